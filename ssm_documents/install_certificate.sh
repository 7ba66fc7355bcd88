#!/usr/bin/env bash
# certrotate installer: puts the certificate held in a Secrets Manager secret on an Apache host.
#
#   install_certificate.sh --secret-arn ARN [--version-stage AWSCURRENT] [--certificate-file PATH]
#       [--key-file PATH] [--chain-file PATH] [--service apache2|httpd] [--apache-config PATH]
#       [--https-port 443] [--reload graceful|restart] [--action install|rollback]
#
# The SSM documents RunUpdateTLS and RollbackTLS embed this file unchanged. It validates every
# value itself (as the documents' allowedPattern do), never prints or logs key material, checks
# the bundle before touching anything, writes files atomically (key 0600), keeps the previous
# files for rollback, runs a config test before a graceful reload, proves over TLS that Apache
# serves the new serial, and restores the previous files on any failure. It never touches the
# OS trust bundle.
#
# Exit codes: 0 installed or already installed; 2 bad parameter; 3 secret unreadable or
# malformed; 4 bundle failed validation; 5 Apache config test failed; 6 reload or serve check
# failed; 7 nothing to roll back; 8 another install is running. 5 and 6 restore the old files.
if [ -z "${BASH_VERSION:-}" ]; then exec /bin/bash "$0" "$@"; fi
set -euo pipefail
umask 077

# ---- distribution table: id | service | control command | server binary | cert dir | key dir ----
DISTROS=(
  "debian|apache2|apache2ctl|apache2|/etc/ssl/certs|/etc/ssl/private"
  "rhel|httpd|apachectl|httpd|/etc/pki/tls/certs|/etc/pki/tls/private"
)

# ---- parameter patterns (the same as the documents' allowedPattern) ----
RE_SECRET_ARN='^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-[0-9]:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$'
RE_STAGE='^[A-Za-z0-9_.-]{1,256}$'
RE_PATH='^$|^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$'
RE_SERVICE='^$|^(apache2|httpd)$'
RE_PORT='^[1-9][0-9]{0,4}$'
RE_RELOAD='^(graceful|restart)$'
RE_ACTION='^(install|rollback)$'

SERVE_WAIT_SECONDS=30

say() { printf 'certrotate: %s\n' "$*"; }
fail() {
  local code=$1
  shift
  printf 'certrotate: error: %s\n' "$*" >&2
  exit "$code"
}

check() {
  local name=$1 value=$2 pattern=$3
  [[ $value =~ $pattern ]] || fail 2 "parameter ${name} has a value that is not allowed (pattern ${pattern})"
}

secret_arn="" stage="AWSCURRENT" cert_file="" key_file="" chain_file="" service="" apache_config=""
port="443" reload="graceful" action="install"
while (($# > 0)); do
  [[ $# -ge 2 ]] || fail 2 "option $1 needs a value"
  case "$1" in
    --secret-arn) secret_arn=$2 ;;
    --version-stage) stage=$2 ;;
    --certificate-file) cert_file=$2 ;;
    --key-file) key_file=$2 ;;
    --chain-file) chain_file=$2 ;;
    --service) service=$2 ;;
    --apache-config) apache_config=$2 ;;
    --https-port) port=$2 ;;
    --reload) reload=$2 ;;
    --action) action=$2 ;;
    *) fail 2 "unknown option (allowed: --secret-arn --version-stage --certificate-file --key-file --chain-file --service --apache-config --https-port --reload --action)" ;;
  esac
  shift 2
done

check action "$action" "$RE_ACTION"
[[ $action == rollback ]] || check SecretArn "$secret_arn" "$RE_SECRET_ARN"
check VersionStage "$stage" "$RE_STAGE"
check CertificateFile "$cert_file" "$RE_PATH"
check KeyFile "$key_file" "$RE_PATH"
check ChainFile "$chain_file" "$RE_PATH"
check ServiceName "$service" "$RE_SERVICE"
check ApacheConfigFile "$apache_config" "$RE_PATH"
check HttpsPort "$port" "$RE_PORT"
check ReloadMode "$reload" "$RE_RELOAD"
((port <= 65535)) || fail 2 "parameter HttpsPort must be at most 65535"

# ---- pick the distribution row ----
distro_id=""
if [[ -n $service ]]; then
  for row in "${DISTROS[@]}"; do
    IFS='|' read -r id svc _ _ _ _ <<<"$row"
    [[ $svc == "$service" ]] && distro_id=$id
  done
elif [[ -r /etc/os-release ]]; then
  # shellcheck source=/dev/null
  os_ids=$(. /etc/os-release && printf '%s %s' "${ID:-}" "${ID_LIKE:-}")
  case " $os_ids " in
    *" debian "* | *" ubuntu "*) distro_id=debian ;;
    *" rhel "* | *" fedora "* | *" centos "* | *" amzn "*) distro_id=rhel ;;
  esac
fi
[[ -n $distro_id ]] || fail 2 "cannot tell the distribution; pass ServiceName apache2 or httpd"
for row in "${DISTROS[@]}"; do
  IFS='|' read -r id svc ctl server_bin cert_dir key_dir <<<"$row"
  [[ $id == "$distro_id" ]] && break
done
cert_file=${cert_file:-$cert_dir/certrotate.pem}
key_file=${key_file:-$key_dir/certrotate.key}
chain_file=${chain_file:-$cert_dir/certrotate-chain.pem}
targets=("$cert_file" "$key_file" "$chain_file")

apache_test() {
  if [[ -n $apache_config ]]; then "$server_bin" -f "$apache_config" -t; else "$ctl" configtest; fi
}
apache_reload() {
  local mode=$1
  if [[ -n $apache_config ]]; then "$server_bin" -f "$apache_config" -k "$mode"; else "$ctl" "$mode"; fi
}
served_serial() {
  local name=$1
  openssl s_client -connect "127.0.0.1:${port}" -servername "$name" </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}
wait_for_serial() {
  local name=$1 want=$2 deadline=$((SECONDS + SERVE_WAIT_SECONDS)) seen=""
  while ((SECONDS < deadline)); do
    seen=$(served_serial "$name" || true)
    [[ $seen == "$want" ]] && return 0
    sleep 0.2
  done
  printf 'certrotate: Apache on port %s serves serial %s, expected %s\n' "$port" "${seen:-none}" "$want" >&2
  return 1
}
cert_facts() {
  openssl x509 -in "$1" -noout -subject -serial -enddate -fingerprint -sha256 | sed 's/^/  /'
}

# ---- one install at a time per host ----
lock_dir=$(dirname "$key_file")
[[ -d $lock_dir ]] || fail 2 "directory of KeyFile does not exist: $lock_dir"
exec 9>>"$lock_dir/.certrotate.lock"
flock -n 9 || fail 8 "another certrotate install is running on this host"

# ---- change register: every change is recorded before it is made, so it can be undone ----
changed=()
restore_previous() {
  local target
  for target in "${changed[@]}"; do
    if [[ -f "$target.certrotate-previous" ]]; then
      cp -p "$target.certrotate-previous" "$target.certrotate-restore"
      mv -f "$target.certrotate-restore" "$target"
    else
      rm -f "$target"
    fi
  done
}
roll_back() {
  local code=$1 reason=$2
  say "rolling back: $reason"
  restore_previous
  if ((${#changed[@]} > 0)) && apache_test >/dev/null 2>&1; then
    apache_reload graceful >/dev/null 2>&1 || true
  fi
  fail "$code" "$reason; the previous certificate files are restored"
}

work=$(mktemp -d "$lock_dir/.certrotate-work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- rollback action: the kept previous files become current again ----
if [[ $action == rollback ]]; then
  for target in "${targets[@]}"; do
    [[ -f "$target.certrotate-previous" ]] || fail 7 "no previous file to restore for $target"
  done
  for target in "${targets[@]}"; do
    cp -p "$target" "$work/$(basename "$target").current"
  done
  for target in "${targets[@]}"; do
    changed+=("$target")
    cp -p "$target.certrotate-previous" "$target.certrotate-restore"
    mv -f "$target.certrotate-restore" "$target"
  done
  for target in "${targets[@]}"; do
    mv -f "$work/$(basename "$target").current" "$target.certrotate-previous"
  done
  restored_cn=$(openssl x509 -in "$cert_file" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p')
  restored_serial=$(openssl x509 -in "$cert_file" -noout -serial | sed 's/^serial=//')
  apache_test >/dev/null 2>&1 || roll_back 5 "Apache config test failed with the previous files"
  apache_reload "$reload" >/dev/null 2>&1 || roll_back 6 "Apache $reload failed"
  wait_for_serial "$restored_cn" "$restored_serial" || roll_back 6 "Apache does not serve the restored certificate"
  say "rolled back; Apache on port $port serves:"
  cert_facts "$cert_file"
  exit 0
fi

# ---- fetch: the secret goes from the aws CLI straight into files only root can read ----
region=$(cut -d: -f4 <<<"$secret_arn")
if ! aws secretsmanager get-secret-value --secret-id "$secret_arn" --version-stage "$stage" \
  --region "$region" --output json 2>"$work/aws.err" | python3 -c '
import json, os, sys
directory = sys.argv[1]
try:
    fields = json.loads(json.load(sys.stdin)["SecretString"])
except (ValueError, KeyError, TypeError):
    sys.exit("the secret value is not a JSON object")
if not isinstance(fields, dict):
    sys.exit("the secret value is not a JSON object")
for field, name in (("CERTIFICATE_PEM", "cert.pem"), ("PRIVATE_KEY_PEM", "key.pem"),
                    ("CERTIFICATE_CHAIN_PEM", "chain.pem")):
    value = fields.get(field)
    if not isinstance(value, str) or "-----BEGIN" not in value:
        sys.exit(f"the secret has no {field}")
    descriptor = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value.strip() + "\n")
' "$work" 2>"$work/parse.err"; then
  if [[ -s $work/aws.err ]]; then
    fail 3 "cannot read secret $secret_arn ($stage): $(grep -v '^$' "$work/aws.err" | tail -n 1)"
  fi
  fail 3 "secret $secret_arn ($stage): $(tail -n 1 "$work/parse.err")"
fi

# ---- validate before touching anything ----
new_cert=$work/cert.pem new_key=$work/key.pem new_chain=$work/chain.pem
openssl x509 -in "$new_cert" -noout 2>/dev/null || fail 4 "CERTIFICATE_PEM is not a readable certificate"
openssl pkey -in "$new_key" -noout 2>/dev/null || fail 4 "PRIVATE_KEY_PEM is not a readable private key"
cert_pub=$(openssl x509 -in "$new_cert" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)
key_pub=$(openssl pkey -in "$new_key" -pubout -outform DER 2>/dev/null | sha256sum)
[[ $cert_pub == "$key_pub" ]] || fail 4 "the private key does not match the certificate"
not_after=$(openssl x509 -in "$new_cert" -noout -enddate | sed 's/^notAfter=//')
openssl x509 -in "$new_cert" -noout -checkend 0 >/dev/null || fail 4 "the certificate expired at $not_after"
if ! verdict=$(openssl verify -partial_chain -CAfile "$new_chain" "$new_cert" 2>&1); then
  fail 4 "the chain does not verify the certificate: $(grep -i 'error' <<<"$verdict" | head -n 1)"
fi
new_serial=$(openssl x509 -in "$new_cert" -noout -serial | sed 's/^serial=//')
new_cn=$(openssl x509 -in "$new_cert" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p')
[[ -n $new_cn ]] || fail 4 "the certificate has no common name to check the served certificate with"

# ---- nothing to do when this certificate is already installed ----
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 2>/dev/null; }
if [[ -f $cert_file && -f $key_file && -f $chain_file ]] &&
  [[ $(fingerprint "$cert_file") == "$(fingerprint "$new_cert")" ]] &&
  cmp -s "$key_file" "$new_key" && cmp -s "$chain_file" "$new_chain"; then
  say "certificate serial $new_serial is already installed; nothing changed"
  exit 0
fi

# ---- stage next to the targets, keep the previous files, then rename atomically ----
for target in "${targets[@]}"; do
  dir=$(dirname "$target")
  [[ -d $dir ]] || fail 2 "directory does not exist: $dir"
done
stage_file() {
  local source=$1 target=$2 mode=$3
  if ((EUID == 0)); then
    install -m "$mode" -o root -g root "$source" "$target.certrotate-new"
  else # a local, unprivileged Apache (the demo): the files stay the caller's
    install -m "$mode" "$source" "$target.certrotate-new"
  fi
}
stage_file "$new_cert" "$cert_file" 0644
stage_file "$new_key" "$key_file" 0600
stage_file "$new_chain" "$chain_file" 0644
for target in "${targets[@]}"; do
  if [[ -f $target ]]; then
    cp -p "$target" "$target.certrotate-keep"
    mv -f "$target.certrotate-keep" "$target.certrotate-previous"
  else
    rm -f "$target.certrotate-previous"
  fi
done
for target in "${targets[@]}"; do
  changed+=("$target")
  mv -f "$target.certrotate-new" "$target"
done

# ---- config test, reload, and proof over TLS ----
if ! test_output=$(apache_test 2>&1); then
  printf '%s\n' "$test_output" | tail -n 3 >&2
  roll_back 5 "Apache config test failed"
fi
apache_reload "$reload" >/dev/null 2>&1 || roll_back 6 "Apache $reload failed"
wait_for_serial "$new_cn" "$new_serial" || roll_back 6 "Apache does not serve the new certificate"

say "installed; Apache on port $port serves:"
cert_facts "$cert_file"
say "files written: $cert_file $key_file (0600) $chain_file; previous kept as *.certrotate-previous"
