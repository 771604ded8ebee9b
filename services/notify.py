"""Sending notices: e-mail over SMTP and the group robots of 企业微信, 钉钉 and 飞书.

`deliver(notice_id)` is what the worker runs for one notice of the outbox
(models/notices.py): claim it, send it by its channel, mark it sent or failed. The
channels themselves (`send_email`, `send_robot`) are plain functions that raise
DeliveryError with the receiver's answer; the `notify-test` command calls them
directly, outside the queue.

Only the stdlib: smtplib and email for mail, urllib for the webhooks (no redirects
followed, a timeout, and the host checked again at sending time).
"""
import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app, render_template

from models import DomainError, User
from models.notices import (
    Notice,
    Robot,
    absolute_link,
    claim,
    mark_attempt_failed,
    mark_sent,
    robot_for,
    webhook_refusal,
)


class DeliveryError(Exception):
    """The channel did not take the message; the text says what it answered."""


# --- E-mail --------------------------------------------------------------------------

def _mail_domain(sender):
    return sender.rpartition("@")[2].strip(">") or "localhost"


def build_email(notice_id, delivery_key, recipient, subject, body, link):
    """The message: plain text and an HTML alternative, the subject encoded as RFC 2047
    (EmailMessage does it for Chinese), and a Message-ID that stays the same for every
    try and resend of the notice (its delivery key)."""
    config = current_app.config
    sender = config.get("MAIL_FROM") or "tierdesk@localhost"
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = formataddr((recipient.display_name, recipient.email))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<notice-{notice_id}-{delivery_key}@{_mail_domain(sender)}>"
    text = f"{body}\n\n{link}\n" if link else f"{body}\n"
    message.set_content(text)
    message.add_alternative(render_template("notices/email.html", subject=subject,
                                            paragraphs=[p for p in body.split("\n") if p],
                                            link=link), subtype="html")
    return message


def send_email(message):
    """Hand `message` to the SMTP server of SMTP_HOST, SMTP_PORT (SMTP_SECURITY none,
    starttls or tls; SMTP_USERNAME and SMTP_PASSWORD when set). Returns the server's
    answer; raises DeliveryError when it refused or could not be reached."""
    config = current_app.config
    host = config.get("SMTP_HOST")
    if not host:
        raise DeliveryError("SMTP_HOST is not set")
    security = (config.get("SMTP_SECURITY") or "starttls").lower()
    if security not in ("none", "starttls", "tls"):
        raise DeliveryError(f"SMTP_SECURITY must be none, starttls or tls, not {security}")
    port = int(config.get("SMTP_PORT") or {"tls": 465, "starttls": 587, "none": 25}[security])
    timeout = config.get("NOTICE_TIMEOUT_SECONDS", 10)
    context = ssl.create_default_context()
    try:
        if security == "tls":
            server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(host, port, timeout=timeout)
        with server:
            if security == "starttls":
                server.starttls(context=context)
            if config.get("SMTP_USERNAME"):
                server.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
            refused = server.send_message(message)
            code, answer = server.noop()
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"SMTP {host}:{port}: {type(error).__name__}: {error}") from error
    if refused:
        raise DeliveryError(f"SMTP refused {', '.join(refused)}")
    return f"SMTP {host}:{port} accepted ({code} {answer.decode(errors='replace')})"


# --- Robots --------------------------------------------------------------------------

class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that answers with a redirect is refused, never followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} refused",
                                     headers, fp)


_opener = urllib.request.build_opener(_NoRedirects)


def dingtalk_sign(secret, timestamp_ms):
    """钉钉 加签: base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")), the
    timestamp in milliseconds; sent URL-encoded as the `timestamp` and `sign` query
    parameters. https://open.dingtalk.com/document/robots/customize-robot-security-settings
    """
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret, timestamp_s):
    """飞书 签名校验: base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")), the
    timestamp in seconds; sent as `timestamp` and `sign` in the JSON body.
    https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot"""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _markdown_body(body, link):
    lines = [p for p in body.split("\n") if p]
    if link:
        lines += ["", f"[{link}]({link})"]
    return "\n".join(lines)


def _markdown_text(subject, body, link):
    return f"**{subject}**\n\n{_markdown_body(body, link)}"


def robot_payload(platform, subject, body, link, mobile="", secret="", now=None):
    """(query parameters, JSON body) of one markdown message for `platform`.

    - 企业微信: {"msgtype": "markdown", "markdown": {"content": …}}. Its markdown
      message mentions people only by user id (<@userid>), not by mobile number
      (mentioned_mobile_list is for text messages), so there is no @ here.
      https://developer.work.weixin.qq.com/document/path/91770
    - 钉钉: {"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles":
      [mobile], "isAtAll": false}}; the text must name "@mobile" for the mention to
      show. With a secret, `timestamp` (ms) and `sign` go into the query.
      https://open.dingtalk.com/document/group/custom-robot-access and
      https://open.dingtalk.com/document/orgapp/message-type
    - 飞书: an interactive card with one markdown element; a custom bot mentions by
      open_id only, so no @ by mobile. With a secret, `timestamp` (s) and `sign` go
      into the body. https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
    """
    now = time.time() if now is None else now
    text = _markdown_text(subject, body, link)
    if platform == "wecom":
        return {}, {"msgtype": "markdown", "markdown": {"content": text}}
    if platform == "dingtalk":
        payload = {"msgtype": "markdown",
                   "markdown": {"title": subject,
                                "text": f"{text}\n\n@{mobile}" if mobile else text},
                   "at": {"atMobiles": [mobile] if mobile else [], "isAtAll": False}}
        query = {}
        if secret:
            stamp = int(now * 1000)
            query = {"timestamp": str(stamp), "sign": dingtalk_sign(secret, stamp)}
        return query, payload
    if platform == "feishu":
        payload = {"msg_type": "interactive",
                   "card": {"header": {"title": {"tag": "plain_text", "content": subject}},
                            "elements": [{"tag": "markdown",
                                          "content": _markdown_body(body, link)}]}}
        if secret:
            stamp = int(now)
            payload = {"timestamp": str(stamp), "sign": feishu_sign(secret, stamp), **payload}
        return {}, payload
    raise DeliveryError(f"unknown platform {platform}")


def send_robot(robot, subject, body, link, mobile=""):
    """Post one message to `robot`'s webhook. Returns the platform's answer; raises
    DeliveryError for a refused address, an HTTP error, a timeout, or an answer whose
    errcode (企业微信, 钉钉) or code (飞书) is not 0."""
    try:
        url, secret = robot.url, robot.secret
    except DomainError as error:
        raise DeliveryError(str(error)) from error
    refusal = webhook_refusal(robot.platform, url)
    if refusal:  # WEBHOOK_ALLOWED_HOSTS may have changed since the robot was saved
        raise DeliveryError(str(refusal))
    query, payload = robot_payload(robot.platform, subject, body, link, mobile, secret)
    parts = urlsplit(url)
    if query:
        parts = parts._replace(query=urlencode(parse_qsl(parts.query) + list(query.items())))
    request = urllib.request.Request(  # noqa: S310 — webhook_refusal allowed http(s) only
        urlunsplit(parts), data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    host = parts.hostname
    try:
        with _opener.open(request, timeout=current_app.config.get(
                "NOTICE_TIMEOUT_SECONDS", 10)) as response:
            raw = response.read(65536).decode(errors="replace")
            status = response.status
    except urllib.error.HTTPError as error:
        raise DeliveryError(f"{host} answered HTTP {error.code} {error.reason}") from error
    except (TimeoutError, urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"{host} unreachable: {reason}") from error
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode", 0)))
        if code not in (0, "0", None):
            message = answer.get("errmsg") or answer.get("msg") or raw
            raise DeliveryError(f"{host} refused: {code} {message}")
    return f"{host} HTTP {status}: {raw[:300]}"


# --- Delivering one notice -------------------------------------------------------------

def send_notice(notice):
    """Send `notice` by its channel; returns the channel's answer, raises DeliveryError."""
    recipient = User.get_by_id(notice.recipient_id)
    if notice.channel == "email":
        if not recipient.email:
            raise DeliveryError("the recipient has no e-mail address")
        return send_email(build_email(notice.id, notice.delivery_key, recipient,
                                      notice.subject, notice.body, notice.link))
    robot = Robot.get_or_none(Robot.id == notice.robot_id) if notice.robot_id else None
    if robot is None or not robot.active:
        raise DeliveryError("the robot was removed or switched off")
    return send_robot(robot, notice.subject, notice.body, notice.link, recipient.mobile)


def deliver(notice_id):
    """Claim the notice and send it: returns "sent", the state after a failed try
    ("pending" or "failed"), or None when another worker has it (or it is not due)."""
    if not claim(notice_id):
        return None
    notice = Notice.get_by_id(notice_id)
    try:
        answer = send_notice(notice)
    except DeliveryError as error:
        return mark_attempt_failed(notice_id, error)
    except Exception as error:  # noqa: BLE001 — a bug must not leave it in "sending"
        current_app.logger.exception("notice %s", notice_id)
        return mark_attempt_failed(notice_id, f"{type(error).__name__}: {error}")
    mark_sent(notice_id, answer)
    return "sent"


def test_channels(user):
    """Send a test message to `user` through each of their channels at once, outside
    the queue: [(channel, ok, answer)]. A channel they cannot be reached by says why."""
    subject = "Tierdesk 测试通知 · test notice"
    body = f"这是一条测试通知。This is a test notice for {user.display_name}."
    link = absolute_link("/")
    results = []
    if user.email:
        try:
            answer = send_email(build_email(0, f"test{int(time.time())}", user, subject,
                                            body, link))
            results.append(("email", True, answer))
        except DeliveryError as error:
            results.append(("email", False, str(error)))
    else:
        results.append(("email", False, "no e-mail address"))
    robot = robot_for(user.branch_id)
    if robot is None:
        results.append(("robot", False, "no robot for the user's branch or the company"))
    else:
        try:
            results.append(("robot", True, send_robot(robot, subject, body, link,
                                                      user.mobile)))
        except DeliveryError as error:
            results.append(("robot", False, str(error)))
    return results
