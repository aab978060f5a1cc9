"""The HTML pages of the test server: consent, device verification, and short notices."""

from __future__ import annotations

import html


def page(title: str, content: str) -> bytes:
    """A whole HTML document: ``title`` (escaped) as its title and heading, then ``content``."""
    title = html.escape(title)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}"
        f"</title></head><body><h1>{title}</h1>{content}</body></html>"
    ).encode()


def paragraph(text: str) -> str:
    """``text``, escaped, as a paragraph."""
    return f"<p>{html.escape(text)}</p>"


def consent_form(params: dict[str, str], autosubmit: bool) -> str:
    """The consent page: approve and deny forms that post the request back."""
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(name)}' value='{html.escape(value)}'>"
        for name, value in params.items()
        if name != "decision"
    )
    forms = "".join(
        f"<form method='post' action='/authorize' id='{decision}'>{hidden}"
        f"<input type='hidden' name='decision' value='{decision}'>"
        f"<button type='submit'>{label}</button></form>"
        for decision, label in (("approve", "Allow"), ("deny", "Deny"))
    )
    client = html.escape(params.get("client_id", ""))
    scope = html.escape(params.get("scope", "") or "the default scope")
    script = "<script>document.getElementById('approve').submit();</script>" if autosubmit else ""
    return f"<p>{client} asks for {scope}.</p>{forms}{script}"


def device_form(user_code: str) -> str:
    """The verification page of the device flow: enter the code, allow or deny."""
    code = html.escape(user_code)
    return (
        "<form method='post' action='/device'>"
        f"<label>Code <input name='user_code' value='{code}'></label>"
        "<button name='decision' value='approve'>Allow</button>"
        "<button name='decision' value='deny'>Deny</button></form>"
    )
