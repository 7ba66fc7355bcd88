"""certrotate installer: put the certificate held in a Secrets Manager secret where the host's TLS
server (Apache, nginx or HAProxy: ``servers.REGISTRY``) reads it, and prove the server serves it.

The SSM documents RunUpdateTLS and RollbackTLS embed this package, built by
``rotation/build/installer.py`` into one program (each module less its comments and its docstrings'
text; bz2-compressed and Ascii85-encoded by ``rotation/build/ssm_documents.py``, for SSM's 64 KB
document limit), and run it with the host's python3 (3.6 or later, standard library only) in isolated mode, its
first argument ``install`` or ``rollback``. Parameters arrive as data in
``SSM_<Name>`` environment variables (interpolationType ENV_VAR) and are checked again here
against the documents' allowedPattern. Whoever runs the program (never a document or its sender)
may name another host file in ``CERTROTATE_INSTALLER_CONFIG``; tests and the unprivileged local
demo do. ``main.FINISHERS`` are the steps run after a success, each given the ``Host`` and ``Outcome``.

Guarantees:
- Writes only under the allowed directories (``DEFAULT_ALLOWED`` plus ``allowed_directories``
  of the root-owned host file ``/etc/certrotate/installer.json``, never a command parameter);
  every directory from ``/`` to a target is owned by root (or the user running the installer)
  and writable by nobody else; a target that is a symlink, has other hard links, is not a
  regular file, is not a certificate or key file, or is an OS trust bundle is refused. Every
  file is opened relative to a directory descriptor with O_NOFOLLOW; new files are created
  O_EXCL with their final mode (key 0600).
- Checks everything before the first change: the secret's fields are CERTIFICATE blocks (and
  one private key in PRIVATE_KEY_PEM only), the key matches, the chain verifies the certificate
  in an in-memory TLS handshake, the certificate is inside its validity period.
- Every change is registered in a journal (in a root-only state directory) before it is made.
  Any failure after the first change (write error or full disk, config test, reload, serve
  check on 16 fresh connections, SIGTERM/SIGINT/SIGHUP, a bug) restores the previous files and
  reloads the server onto them; after a SIGKILL or a crash, the next run rolls the interrupted
  install back (or finishes keeping the previous files) before anything else. The saved
  ``*.certrotate-previous`` files are replaced only by a pair whose key matches its certificate,
  and only after the new one is served.
- One install at a time per host: a lock under ``/run/certrotate``, on a descriptor no child
  (the server included) inherits.
- The private key is never printed or logged, and never written anywhere but the key file
  (for the handshake check it sits in an unnamed in-memory file that vanishes with the process).
- After every run that got as far as the certificate files (installed, unchanged, rolled back,
  failed) the host's fleet view is recorded: public facts of what each file serves, as SSM custom
  inventory ``Custom:CertrotateCertificate`` for the instance the SSM agent names in
  ``AWS_SSM_INSTANCE_ID``/``AWS_SSM_REGION_NAME`` (kept in the state directory, since PutInventory
  replaces the type whole). Recording never changes the run's exit code; a failure to record is a
  warning on stderr.

Exit codes (``Exit``): 0 installed, already installed or rolled back; 1 unexpected error (a bug;
the files were restored); 2 bad parameter; 3 secret unreadable or malformed; 4 bundle (or, for
RollbackTLS, the saved previous files) invalid; 5 the server's config test failed; 6 reload or serve
check failed; 7 nothing to roll back; 8 another install is running; 9 refused: unsafe path,
link, ownership or host configuration; 10 a file could not be written (full disk, I/O error);
11 interrupted by a signal; 12 a rollback could not finish (the journal is kept; the next run
retries it); 13 the host lacks a tool (python3, the aws CLI, the server's tools); 14 the previous files were
restored but the server could not be brought back onto them (after the undo's reload no process of
the server listens on the port): it is down. 5, 6, 10, 11 and 1 restore the previous files.

Modules, in the order a run uses them: ``parameters`` (the documents' parameters, one run's
request), ``output`` (exit codes, errors, printable output), ``registry`` (what the server adapters
declare, as the parameters and the host file read it), ``host_file`` (the host's settings, test
fault injection), ``distro`` (distribution families), ``servers`` (``base.Server``, the contract
every adapter keeps and how to add one; ``REGISTRY``, the one list; ``apache``, ``nginx``,
``haproxy``, one adapter each), ``server_processes`` (the server's own processes and sockets),
``tools`` and ``aws_cli`` (trusted host tools,
the secret), ``directories`` and ``path_policy`` (where certrotate may write), ``certificate`` and
``validation`` (what it will write, checked), ``journal``, ``swap``, ``host``, ``recovery`` and
``runs`` (the change, and the way back), ``served_check`` (after every reload, 16 fresh
connections must all present the certificate: a leftover worker fails the install), ``fleet_record``
(the fleet view and its schema, which the Lambda's reader is pinned to), ``main``.
"""
