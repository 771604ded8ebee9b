"""The organisation's digital signature on the committee report (PAdES, pyHanko).

The key is a PKCS#12 file the administrator configures (SIGNING_PKCS12 and
SIGNING_PKCS12_PASSWORD), or else a key and a self-signed certificate made on
first use in SIGNING_DIR (instance/signing/, outside the repository). The
signer is loaded once per process. `verify()` answers /verify: whether a PDF's
signature is intact, made with this organisation's key, covers the whole file,
and which cycle's results (by fingerprint) it carries.

pyHanko, cryptography and asn1crypto are imported inside the functions that use
them: pyHanko alone takes most of a second to load, which a web process should not
spend at start before anyone signs or checks a report.
"""
import asyncio
import datetime
import fcntl
import io
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from i18n import lazy_gettext as _l

_lock = threading.Lock()
_signers = {}

KEYWORD_RE = re.compile(r"tierdesk-cycle=(\d+) results=([0-9a-f]{64})")


def _run(make_coroutine):
    """Run pyHanko's async API to completion, also where an event loop is already
    running in this thread (pyHanko's sync wrappers call asyncio.run())."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def _signing_dir():
    configured = current_app.config.get("SIGNING_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "signing"


def _generate(directory, organisation):
    """A P-256 key and a ten-year self-signed certificate for the organisation."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, organisation),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_cert_sign=True,
                crl_sign=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            # No extended key usage: NSS (poppler's pdfsig) refuses a self-signed
            # CA certificate that restricts it.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / "org-key.pem", directory / "org-cert.pem"
    # The key is never readable by others, not even for a moment; the certificate is
    # written last, so its presence means the pair is complete.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # a key left by a broken attempt keeps its mode otherwise
        out.write(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def signer():
    """The organisation's pyHanko signer, loaded (or first made) once per process."""
    from pyhanko.sign import signers

    pkcs12 = current_app.config.get("SIGNING_PKCS12")
    key = (pkcs12, str(_signing_dir()))
    with _lock:
        if key not in _signers:
            if pkcs12:
                password = current_app.config.get("SIGNING_PKCS12_PASSWORD") or ""
                loaded = signers.SimpleSigner.load_pkcs12(
                    pkcs12, passphrase=password.encode() if password else None)
                if loaded is None:
                    raise RuntimeError("SIGNING_PKCS12 could not be loaded")
            else:
                directory = _signing_dir()
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Web workers and the report worker may start at once: one makes the
                # key, the others wait for it and load the same pair.
                with open(directory / ".generating", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if not (directory / "org-cert.pem").exists():
                        _generate(directory, current_app.config.get("ORGANISATION_NAME")
                                  or "Tierdesk")
                loaded = signers.SimpleSigner.load(str(directory / "org-key.pem"),
                                                   str(directory / "org-cert.pem"))
            _signers[key] = loaded
        return _signers[key]


def keywords(cycle_id, fingerprint):
    return f"tierdesk-cycle={cycle_id} results={fingerprint}"


def sign_pdf(source, output, reason=""):
    """Write to `output` the PDF read from `source`, signed with the organisation's key
    (PAdES B-B). Both are open files; `output` is opened for reading and writing
    ("w+b"): pyHanko reads back what it wrote to fill in the signature. Neither
    document is held in memory whole."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    writer = IncrementalPdfFileWriter(source, strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name="Tierdesk", md_algorithm="sha256", reason=reason or None,
        subfilter=fields.SigSeedSubFilter.PADES)
    org_signer = signer()
    _run(lambda: signers.async_sign_pdf(writer, meta, signer=org_signer, output=output))


@dataclass
class Verdict:
    """What /verify tells: valid or not, why, and what the document reports."""
    valid: bool
    reason: str = ""
    cycle_id: int | None = None
    fingerprint: str | None = None
    signer: str = ""
    signed_at: datetime.datetime | None = None
    details: list = field(default_factory=list)


def verify(data):
    """Check a PDF's signature: intact, ours, covering the whole file.

    Never raises for bad input: returns a Verdict whose `reason` says what is
    wrong (not a PDF, unreadable, unsigned, changed, appended to, another key).
    """
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    if not data.lstrip()[:5].startswith(b"%PDF-"):
        return Verdict(False, str(_l("This file is not a PDF.")))
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except Exception:  # noqa: BLE001 — any parser failure means the file is damaged
        return Verdict(False, str(_l("This PDF is damaged and cannot be read.")))
    if not signatures:
        return Verdict(False, str(_l("This PDF carries no digital signature.")))
    ours = signer().signing_cert
    context = ValidationContext(trust_roots=[ours], allow_fetching=False)
    embedded = signatures[-1]
    try:
        status = _run(lambda: async_validate_pdf_signature(embedded, context))
    except Exception:  # noqa: BLE001 — a mangled signature is a "not valid", not a 500
        return Verdict(False, str(_l("The signature is damaged and cannot be checked.")))
    cert = status.signing_cert
    verdict = Verdict(False, signer=cert.subject.human_friendly if cert else "",
                      signed_at=status.signer_reported_dt)
    if not status.intact or not status.valid:
        verdict.reason = str(_l("The document was changed after it was signed: its "
                                "signature no longer matches its content."))
        return verdict
    if cert is None or cert.dump() != ours.dump():
        verdict.reason = str(_l("The signature was made with a key that is not this "
                                "organisation's."))
        return verdict
    if len(signatures) != 1 or status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        verdict.reason = str(_l("Something was added to the document after it was signed "
                                "(an incremental update)."))
        return verdict
    info = _signed_keywords(embedded)
    match = KEYWORD_RE.search(info or "")
    if match is None:
        verdict.reason = str(_l("The signature is ours, but the document names no grading "
                                "cycle."))
        return verdict
    verdict.valid = True
    verdict.cycle_id, verdict.fingerprint = int(match.group(1)), match.group(2)
    return verdict


def _signed_keywords(embedded):
    """/Keywords of the document's Info as of the signed revision."""
    try:
        reader = embedded.reader
        info = reader.trailer_view.get("/Info")
        info = info.get_object() if info is not None else None
        return str(info.get("/Keywords", "")) if info is not None else ""
    except Exception:  # noqa: BLE001
        return ""
