"""The reverse-proxy example (docs/nginx.conf, docs/production.md): its logs hold no session id, nothing the visitor
typed and no page url (docs/security.md, round 3). nginx's default access-log format writes `$request`, the whole
request line, and session routes carry the id, a bearer token, in the path."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from net_helpers import free_port

CONF = Path(__file__).resolve().parent.parent / "docs" / "nginx.conf"
# Variables that carry the raw path (with the id), the query (what the visitor typed), the page the visitor was on
# or a credential. `$request_method`/`$request_time` are fine: the word boundary keeps them apart from `$request`.
UNSAFE = re.compile(
    r"\$(?:request|request_uri|uri|document_uri|args|query_string|is_args|request_body|http_referer|http_cookie|"
    r"http_authorization|cookie_\w+|arg_\w+)\b"
)
SID = "AbCdEfGhSECRETsecretSECRETsecret0123456789_-ZYXWVUTSRQPONMLK"


def _directives(text: str, name: str) -> list[str]:
    """Each `name ...;` directive of the config (comments removed), multi-line ones joined."""
    body = re.sub(r"#[^\n]*", "", text)
    return [m.group(1) for m in re.finditer(rf"(?:^|[;{{}}\s]){name}\s+([^;]*);", body)]


def test_the_example_proxy_logs_no_request_line_query_or_referer():
    text = CONF.read_text(encoding="utf-8")
    formats = _directives(text, "log_format")
    assert formats, "the example defines its own access-log format"
    names = set()
    for fmt in formats:
        name, _, spec = fmt.strip().partition(" ")
        names.add(name)
        assert not UNSAFE.search(spec), f"log_format {name} writes {UNSAFE.search(spec).group(0)}"
        assert "$session_suggest_log_path" in spec  # the path, with the id cut
    access = _directives(text, "access_log")
    assert access, "an access_log that names the format (the default is 'combined', which writes $request)"
    for directive in access:
        parts = directive.split()
        assert parts[0] == "off" or (len(parts) >= 2 and parts[1] in names), directive
    # the error log writes the request line on upstream errors, which nginx logs at level "error"
    for directive in _directives(text, "error_log"):
        assert directive.split()[-1] in ("crit", "alert", "emerg"), directive


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(), reason="nginx absent")
def test_nginx_with_the_example_writes_no_session_id_query_or_referer(tmp_path):
    """The example under a real nginx (where installed): requests for a session route through it, the upstream down
    (so the error path is taken too); neither log holds the id, the query or the Referer's token."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port, upstream = free_port(), free_port()  # nothing listens on `upstream`: every request is a 502
    logs = tmp_path / "logs"
    logs.mkdir()
    site = CONF.read_text(encoding="utf-8")
    site = site.replace("/var/log/nginx/", f"{logs}/").replace("listen 80;", f"listen 127.0.0.1:{port};")
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(f"{k}_temp_path {tmp_path}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {logs}/main.error.log; events {{}} "
        f"http {{ access_log off; {temp} include {tmp_path}/site.conf; }}"
    )
    args = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    subprocess.run([*args, "-t"], check=True, capture_output=True)
    subprocess.run(args, check=True, capture_output=True)
    try:
        paths = [
            f"/v1/sessions/{SID}/suggestions?k=3&query=jane.doe%40mail.test",
            f"/v1/sessions/{SID}/events",
            f"//v1//sessions//{SID}/chat",
            f"/v1/%73essions/{SID}",
            f"/V1/SESSIONS/{SID}",
        ]
        for path in paths:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", headers={"Referer": "https://site.test/reset?token=tok-123"}
            )
            for _ in range(50):  # nginx forks its worker after the master returns
                try:
                    urllib.request.urlopen(req, timeout=5)
                except urllib.error.HTTPError as exc:
                    assert exc.code == 502
                    break
                except urllib.error.URLError:
                    time.sleep(0.1)
    finally:
        pid = int((tmp_path / "nginx.pid").read_text())
        subprocess.run([nginx, *args[1:], "-s", "stop"], capture_output=True)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
    access = (logs / "session-suggest.access.log").read_text()
    assert len(access.splitlines()) == len(paths)
    assert access.count(f"/v1/sessions/{SID[:8]}...") == len(paths) - 1  # the upper-case route keeps its case
    written = access + "".join(p.read_text() for p in logs.glob("*error.log"))
    for secret in (SID[8:20], "jane.doe", "tok-123", "reset", "query="):
        assert secret not in written, secret
