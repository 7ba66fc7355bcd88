"""Every document parameter pattern as the real engines see it: compiled by Go's own regexp (SSM
Agent's) and Java's (the SSM API's), each sample value accepted or refused alike by Go, Java, the
local SSM runner (RE2) and the installer's own check (Python ``re``).

Go and Java run as small programs written into the test's tmp dir (``go run`` with GOCACHE and
GOPATH there, no module proxy; ``java File.java``). Without them the test fails in CI and skips elsewhere.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rotation.build.budget import longest_value
from rotation.emulation.allowed_pattern import PatternError, agent_accepts, api_accepts, compile_pattern
from rotation.emulation.ssm_runner import DocumentParameterError, resolve_parameters
from tests.integration.conftest import require

ROOT = Path(__file__).resolve().parents[2]
OLD_PATH_PATTERN = r"^$|^(/[A-Za-z0-9_][A-Za-z0-9._-]{0,254}){1,16}$"  # main before issue 24

GO_PROGRAM = """package main

import (
\t"bufio"
\t"encoding/hex"
\t"fmt"
\t"os"
\t"regexp"
\t"strings"
)

// Input lines: "P <hex pattern>" or "V <pattern index> <hex value>". Output: one line each,
// "P ok" or "P error <message>", "V true" / "V false" (MatchString, as SSM Agent calls it).
func main() {
\tvar compiled []*regexp.Regexp
\tscanner := bufio.NewScanner(os.Stdin)
\tscanner.Buffer(make([]byte, 1<<20), 1<<24)
\tfor scanner.Scan() {
\t\tfields := strings.Fields(scanner.Text())
\t\tif fields[0] == "P" {
\t\t\traw, _ := hex.DecodeString(fields[1])
\t\t\tre, err := regexp.Compile(string(raw))
\t\t\tcompiled = append(compiled, re)
\t\t\tif err != nil {
\t\t\t\tfmt.Println("P error", strings.ReplaceAll(err.Error(), "\\n", " "))
\t\t\t} else {
\t\t\t\tfmt.Println("P ok")
\t\t\t}
\t\t\tcontinue
\t\t}
\t\tvar index int
\t\tfmt.Sscan(fields[1], &index)
\t\tvalue := ""
\t\tif len(fields) > 2 {
\t\t\traw, _ := hex.DecodeString(fields[2])
\t\t\tvalue = string(raw)
\t\t}
\t\tif compiled[index] == nil {
\t\t\tfmt.Println("V error")
\t\t} else {
\t\t\tfmt.Println("V", compiled[index].MatchString(value))
\t\t}
\t}
}
"""

JAVA_PROGRAM = """import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.regex.*;

// The same protocol as the Go program; "V true" when Matcher.matches(), the whole value.
public class Check {
    static String unhex(String hex) {
        byte[] bytes = new byte[hex.length() / 2];
        for (int i = 0; i < bytes.length; i++) bytes[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        return new String(bytes, StandardCharsets.UTF_8);
    }
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        List<Pattern> compiled = new ArrayList<>();
        for (String line; (line = in.readLine()) != null; ) {
            String[] fields = line.trim().split(" ");
            if (fields[0].equals("P")) {
                try {
                    compiled.add(Pattern.compile(unhex(fields[1])));
                    System.out.println("P ok");
                } catch (PatternSyntaxException e) {
                    compiled.add(null);
                    System.out.println("P error " + e.getDescription());
                }
                continue;
            }
            String value = fields.length > 2 ? unhex(fields[2]) : "";
            Pattern pattern = compiled.get(Integer.parseInt(fields[1]));
            System.out.println(pattern == null ? "V error" : "V " + pattern.matcher(value).matches());
        }
    }
}
"""


def document_patterns() -> dict[str, str]:
    """Where -> allowedPattern, for every parameter of both documents and of the documents both templates embed."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "ssm_documents").glob("*.yaml")):
        for name, spec in yaml.safe_load(path.read_text())["parameters"].items():
            found[f"{path.name}:{name}"] = spec["allowedPattern"]
    for path in sorted((ROOT / "cfn").glob("*.yaml")):
        for logical_id, resource in yaml.safe_load(path.read_text())["Resources"].items():
            if resource["Type"] == "AWS::SSM::Document":
                for name, spec in resource["Properties"]["Content"]["parameters"].items():
                    found[f"{path.name}:{logical_id}:{name}"] = spec["allowedPattern"]
    return found


def samples(pattern: str) -> list[str]:
    """Values around the pattern's edges: its longest value, one character more, shell and path tricks."""
    longest = longest_value(pattern)
    values = [
        "",
        longest,
        longest + longest[-1:],
        longest[:-1],
        longest + "\n",
        "\n" + longest,
        longest + ";id",
        "x" + longest,
        "AWSCURRENT",
        "AWSCURRENT\n",
        "$(id)",
        "/etc/ssl/certrotate/web.pem",
        "/etc/ssl/certrotate/web.pem\n",
        "/etc/ssl/../shadow",
        "/etc/ssl/a b.pem",
        "relative/web.pem",
        "/" + "d" * 50 + "/web.pem",
        "/" + "d" * 51 + "/web.pem",
        "/etc/ssl/" + "f" * 255,
        "/etc/ssl/" + "f" * 256,
        "/a" * 15 + "/" + "f" * 255,
        "/a" * 16 + "/f.pem",
        "/a" * 15 + "/f.pem",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:web-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:web\n",
        "apache",
        "nginx",
        "haproxy",
        "httpd",
        "443",
        "65535",
        "0443",
        "graceful",
        "restart",
        "combined",
        "separate",
        "Apache",
    ]
    return list(dict.fromkeys(values))


def run_engine(command: list[str], cwd: Path, patterns: list[str], env: dict[str, str]) -> list[str]:
    lines = [f"P {p.encode().hex()}" for p in patterns]
    lines += [f"V {i} {v.encode().hex()}" for i, p in enumerate(patterns) for v in samples(p)]
    result = subprocess.run(
        command, input="\n".join(lines) + "\n", capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def go_command(directory: Path) -> tuple[list[str], dict[str, str]]:
    """``go run`` of the Go program in ``directory``, its cache and GOPATH there, no module proxy."""
    go = shutil.which("go")
    require(None if go else "go is not installed (apt-get install -y golang-go)")
    directory.mkdir(exist_ok=True)
    (directory / "main.go").write_text(GO_PROGRAM)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "GOCACHE": str(directory / "gocache"),
        "GOPATH": str(directory / "gopath"),
        "GOPROXY": "off",
    }
    return [str(go), "run", "main.go"], env


def go_answers(directory: Path, patterns: list[str]) -> list[str]:
    command, env = go_command(directory)
    return run_engine(command, directory, patterns, env)


def java_answers(directory: Path, patterns: list[str]) -> list[str]:
    java = shutil.which("java")
    require(None if java else "java is not installed (apt-get install -y default-jre-headless)")
    directory.mkdir(exist_ok=True)
    (directory / "Check.java").write_text(JAVA_PROGRAM)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory)}
    return run_engine([str(java), "Check.java"], directory, patterns, env)


def test_every_document_pattern_compiles_in_go_and_java_and_every_engine_decides_each_sample_alike(
    tmp_path: Path,
) -> None:
    """On main before issue 24, Go refused the three path patterns of all four documents (18 of 54)."""
    found = document_patterns()
    # 10 + 8 parameters of the certificate documents, 3 of InstallTrustBundle, 1 of InstallCRL; twice in the templates
    assert len(found) == 66
    patterns = sorted(set(found.values()))
    go = go_answers(tmp_path / "go", patterns)
    java = java_answers(tmp_path / "java", patterns)
    go_compiled, java_compiled = go[: len(patterns)], java[: len(patterns)]
    refused = [(p, answer) for p, answer in zip(patterns, go_compiled) if answer != "P ok"]
    assert refused == [], f"Go's regexp (SSM Agent) refuses: {refused}"
    assert java_compiled == ["P ok"] * len(patterns)
    decisions = [(p, v) for p in patterns for v in samples(p)]
    assert len(go) == len(java) == len(patterns) + len(decisions)
    for (pattern, value), go_answer, java_answer in zip(decisions, go[len(patterns) :], java[len(patterns) :]):
        compiled = compile_pattern(pattern)
        agent, api = go_answer == "V true", java_answer == "V true"
        assert agent_accepts(compiled, value) is agent, (pattern, value)  # the runner searches as Go does
        assert api_accepts(compiled, value) is api, (pattern, value)  # and matches the whole value as Java
        assert agent is api, (pattern, value)  # anchored patterns: the same meaning in both engines
        assert (re.fullmatch(pattern, value) is not None) is api, (pattern, value)  # the installer's own check


# Patterns on both sides of Go's rules: nested repeat counts multiply to at most 1000, a count is at
# most 1000, and no Perl construct Go lacks. The runner (RE2) must refuse every one Go refuses.
EDGE_PATTERNS = [
    OLD_PATH_PATTERN,
    r"(x{0,254}){1,16}",
    r"(x{0,62}){1,16}",
    r"(x{0,63}){1,16}",
    r"((x{0,10}){0,10}){0,10}",
    r"((x{0,10}){0,10}){0,11}",
    r"(ab{2,5}){200}",
    r"(ab{2,5}){201}",
    r"x{1000}",
    r"x{1001}",
    r"(x{2,}){500}",
    r"(x{2,}){501}",
    r"(x*){1000}",
    r"(x+y?){1000}",
    r"(?:a|b{500}){2}",
    r"(?:a|b{500}){3}",
    r"a(?=b)",
    r"(a)\1",
    r"a++",
    r"\Z",
    r"(?P<name>a)",
    r"[[:alpha:]]",
    r"\pL{2}",
]
KNOWN_STRICTER = {r"(((a{100}){10}){0}){5}"}  # Go stops counting under {0}, RE2 does not (allowed_pattern.py)


def test_the_runner_compiles_what_go_compiles_and_refuses_what_go_refuses(tmp_path: Path) -> None:
    """RE2 in the runner against Go itself; on main the runner compiled with Python's re, which took them all."""
    patterns = EDGE_PATTERNS + sorted(KNOWN_STRICTER)
    command, env = go_command(tmp_path)
    lines = "".join(f"P {p.encode().hex()}\n" for p in patterns)
    result = subprocess.run(command, input=lines, capture_output=True, text=True, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr
    answers = dict(zip(patterns, result.stdout.splitlines()))
    assert answers[OLD_PATH_PATTERN].startswith("P error") and "invalid repeat count" in answers[OLD_PATH_PATTERN]
    for pattern in patterns:
        try:
            compile_pattern(pattern)
            runner = "ok"
        except PatternError:
            runner = "error"
        go_says = "ok" if answers[pattern] == "P ok" else "error"
        if pattern in KNOWN_STRICTER:
            assert (go_says, runner) == ("ok", "error"), pattern
        else:
            assert runner == go_says, (pattern, answers[pattern])
    assert {answers[p] == "P ok" for p in EDGE_PATTERNS} == {True, False}  # both sides are exercised


def install_document() -> dict[str, object]:
    return dict(yaml.safe_load((ROOT / "ssm_documents" / "RunUpdateTLS.yaml").read_text()))


ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:certs/web-AbCdEf"


def test_the_runner_refuses_a_document_whose_pattern_go_cannot_compile_whatever_the_value() -> None:
    """As SSM Agent does: every pattern is compiled, even one whose parameter keeps its empty default.
    On main the runner matched with Python's re and ran the command."""
    document = install_document()
    document["parameters"]["ChainFile"]["allowedPattern"] = OLD_PATH_PATTERN  # type: ignore[index]
    with pytest.raises(DocumentParameterError) as caught:
        resolve_parameters(document, {"SecretArn": ARN})  # ChainFile not given: its default "" is checked
    assert "ChainFile" in str(caught.value) and "invalid repetition size" in str(caught.value)
    assert OLD_PATH_PATTERN in str(caught.value)


def test_the_runner_names_every_pattern_go_cannot_compile_at_once() -> None:
    document = install_document()
    for name in ("CertificateFile", "KeyFile"):
        document["parameters"][name]["allowedPattern"] = OLD_PATH_PATTERN  # type: ignore[index]
    with pytest.raises(DocumentParameterError) as caught:
        resolve_parameters(document, {"SecretArn": ARN, "CertificateFile": "/etc/ssl/certrotate/web.pem"})
    assert "parameter CertificateFile:" in str(caught.value) and "parameter KeyFile:" in str(caught.value)


def test_the_runner_takes_the_longest_values_the_documents_admit_and_refuses_one_character_more() -> None:
    document = install_document()
    parameters = document["parameters"]
    assert isinstance(parameters, dict)
    longest = {name: longest_value(spec["allowedPattern"]) for name, spec in parameters.items()}
    longest["FileLayout"] = "separate"  # combined takes CertificateFile alone (checked by the program)
    assert resolve_parameters(document, longest)["CertificateFile"] == longest["CertificateFile"]
    assert len(longest["CertificateFile"]) == 1021 and len(longest["SecretArn"]) == 623
    for name in ("SecretArn", "VersionStage", "CertificateFile"):
        with pytest.raises(DocumentParameterError, match=name):
            resolve_parameters(document, {**longest, name: longest[name] + longest[name][-1]})


def test_the_path_pattern_admits_what_it_admitted_before_but_for_the_lengths_it_now_bounds() -> None:
    """Same characters, same shape (names that start with a letter, digit or _, no ``..`` start, no
    empty name); only lengths differ: at most 15 directories of 50 characters, a file name of 255."""
    from certrotate_installer.parameters import MAX_PATH_LENGTH, PATH_PATTERN

    generator = random.Random(24)
    alphabet = "/aZ9_.-;$ \n"
    accepted = 0
    for _ in range(20000):
        value = "".join(generator.choice(alphabet) for _ in range(generator.randrange(0, 24)))
        old, new = re.fullmatch(OLD_PATH_PATTERN, value), re.fullmatch(PATH_PATTERN, value)
        assert (old is None) == (new is None), value  # short values: no length bound reached
        accepted += new is not None
    assert accepted > 500  # both sides of the patterns are exercised
    assert re.fullmatch(PATH_PATTERN, "/" + "d" * 51 + "/web.pem") is None  # bounded on purpose
    assert re.fullmatch(OLD_PATH_PATTERN, "/" + "d" * 51 + "/web.pem")
    assert len(longest_value(PATH_PATTERN)) <= MAX_PATH_LENGTH  # the installer's own bound holds already
