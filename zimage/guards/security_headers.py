"""Response headers that every answer of the Space carries.

- ``X-Content-Type-Options: nosniff``: a browser never runs an upload or output as another type.
- ``Referrer-Policy: no-referrer``: links out of the page do not tell other sites where the
  visitor came from.
- ``Permissions-Policy``: the page may use only what it needs (the camera for the Edit tab's
  webcam source, the clipboard for paste and copy buttons, fullscreen for image previews);
  every other powerful feature is denied, for the page and anything it could frame. Only
  features Chromium knows are named: it warns in the console about any other.
- ``Content-Security-Policy: frame-ancestors ...`` only when the operator sets
  ``ZIMAGE_FRAME_ANCESTORS``: the Space is meant to be embedded, so framing stays open by default.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_FEATURES = ("camera", "clipboard-read", "clipboard-write", "fullscreen")
DENIED_FEATURES = (
    "accelerometer",
    "autoplay",
    "browsing-topics",
    "display-capture",
    "encrypted-media",
    "gamepad",
    "geolocation",
    "gyroscope",
    "hid",
    "identity-credentials-get",
    "idle-detection",
    "local-fonts",
    "magnetometer",
    "microphone",
    "midi",
    "otp-credentials",
    "payment",
    "picture-in-picture",
    "publickey-credentials-create",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "storage-access",
    "usb",
    "window-management",
    "xr-spatial-tracking",
)


def permissions_policy() -> str:
    allowed = [f"{feature}=(self)" for feature in ALLOWED_FEATURES]
    return ", ".join([*allowed, *(f"{feature}=()" for feature in DENIED_FEATURES)])


def security_headers(frame_ancestors: str = "") -> dict[str, str]:
    """The headers every response gets; ``frame_ancestors`` is a CSP source list or empty."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": permissions_policy(),
    }
    if frame_ancestors:
        headers["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors}"
    return headers


class SecurityHeaders:
    """Pure ASGI middleware: sets the headers above on every HTTP response (replacing any
    the app set under the same names)."""

    def __init__(self, app: ASGIApp, frame_ancestors: str = "") -> None:
        self.app = app
        headers = security_headers(frame_ancestors)
        self._names = {name.lower().encode() for name in headers}
        self._headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (n, v) for n, v in message.get("headers", []) if n.lower() not in self._names
                ]
                message = {**message, "headers": kept + self._headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
