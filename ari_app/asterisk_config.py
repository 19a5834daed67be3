"""Render the Asterisk configuration Ringpool needs from asterisk-config/ templates and the settings.

Templates use ``{{name}}`` placeholders (Asterisk's own ``${VAR}`` syntax stays untouched). An unknown
placeholder is an error, so a template and this renderer cannot drift apart silently.
"""

from __future__ import annotations

import re
from pathlib import Path

from ari_app.config import TEST_SERVICE_ECHO, TEST_SERVICE_READBACK, Destination, Settings, Trunk

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "asterisk-config"
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_CODECS = "ulaw,alaw"


def render_template(text: str, values: dict[str, str], *, name: str = "template") -> str:
    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"{name}: no value for placeholder {{{{{key}}}}}")
        return str(values[key])

    return _PLACEHOLDER.sub(substitute, text)


def _section(name: str, **options: str | int | None) -> str:
    lines = [f"[{name}]"]
    lines += [f"{key} = {value}" for key, value in options.items() if value is not None]
    return "\n".join(lines) + "\n"


def trunk_sections(trunk: Trunk) -> str:
    """An inbound-capable endpoint identified only by source address, plus an AOR for outbound calls."""
    parts = [_section(
        trunk.endpoint, type="endpoint", context="ringpool-inbound", disallow="all", allow=_CODECS,
        direct_media="no", rtp_symmetric="yes", force_rport="yes", trust_id_inbound="yes",
        send_pai="no", dtmf_mode="rfc4733", aors=trunk.endpoint if trunk.contact else None,
    )]
    parts.append(_section(f"{trunk.endpoint}-identify", type="identify", endpoint=trunk.endpoint,
                          match=",".join(trunk.match)))
    if trunk.contact:
        parts.append(_section(trunk.endpoint, type="aor", contact=trunk.contact, qualify_frequency=0))
    return "\n".join(parts)


def destination_sections(dest: Destination) -> str:
    """SIP destinations get an endpoint of their own; trunk destinations are dialled through the trunk, and
    test-account destinations are the account's own endpoint (rendered with the accounts)."""
    if dest.kind != "sip" or dest.account:
        return ""
    user = f"{dest.user}@" if dest.user else ""
    return "\n".join([
        _section(dest.endpoint, type="endpoint", context="ringpool-outbound", disallow="all", allow=_CODECS,
                 direct_media="no", rtp_symmetric="yes", dtmf_mode="rfc4733", aors=dest.endpoint),
        _section(dest.endpoint, type="aor", contact=f"sip:{user}{dest.host}:{dest.port}", qualify_frequency=0),
    ])


def render_all(settings: Settings, *, root: Path, run_dir: Path, ari_password: str,
               extra_pjsip: str = "", extra_extensions: str = "", accounts_conf: str | None = None) -> dict[str, str]:
    """All files of the per-run etc folder, by name. ``accounts_conf`` is the test-accounts include file
    (default: the configured accounts only; the running app rewrites it with API accounts and bans)."""
    from ari_app.accounts.model import ACCOUNTS_CONF, configured_specs, opus_module_present, render_accounts_conf

    generated = "\n".join([trunk_sections(t) for t in settings.trunks.values()]
                          + [destination_sections(d) for d in settings.destinations.values()])
    ast = settings.asterisk
    values = {
        "root": str(root), "run_dir": str(run_dir),
        "http_bind": "127.0.0.1", "http_port": str(ast.http_port),
        "ari_user": settings.ari.username, "ari_password": ari_password, "ari_app": settings.ari.app,
        "sip_bind": ast.sip_bind, "sip_port": str(ast.sip_port),
        "rtp_start": str(ast.rtp_start), "rtp_end": str(ast.rtp_end),
        "generated": generated + "\n" + extra_pjsip, "extra_extensions": extra_extensions,
        "accounts_conf": ACCOUNTS_CONF,
        "echo_number": TEST_SERVICE_ECHO, "readback_number": TEST_SERVICE_READBACK,
    }
    files: dict[str, str] = {}
    for template in sorted(TEMPLATE_DIR.iterdir()):
        if template.name.startswith("."):
            continue
        text = template.read_text(encoding="utf-8")
        if template.suffix == ".tmpl":
            files[template.stem] = render_template(text, values, name=template.name)
        else:
            files[template.name] = text
    if accounts_conf is None:
        accounts_conf = render_accounts_conf(configured_specs(settings), opus=opus_module_present(root))
    files[ACCOUNTS_CONF] = accounts_conf
    return files

