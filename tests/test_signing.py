"""Signing: the committee signs the results, the report is signed as a PDF (PAdES),
and /verify tells a genuine report from a changed or foreign one."""
import io
import re
import shutil
import subprocess

import pytest

from models import AuditEvent, CycleSignature, DomainError, GradingCycle, User
from models.cycles import finalise, reopen, save_score
from models.phases import advance, reopen_cycle
from models.signing import results_fingerprint, sign
from tests.conftest import PASSWORD, login
from tests.pdf_helpers import RARE_NAME, fetch_report, pdf_text, report_bytes, signing_cycle

PUBLIC_URL = "https://tierdesk.example.com"


@pytest.fixture
def app(app, tmp_path):
    """The app with its signing key kept in this test's own directory, and the public
    address a signed report needs."""
    app.config.update(SIGNING_DIR=str(tmp_path / "signing"), PUBLIC_URL=PUBLIC_URL,
                      REPORTS_DIR=str(tmp_path / "reports"))
    return app


@pytest.fixture
def graded(app, make):
    return signing_cycle(app, make)


def _sign_all(app, s, cycle):
    with app.test_request_context():
        for member in s["members"]:
            sign(cycle, member, PASSWORD)
        sign(cycle, s["chair"], PASSWORD)


def test_members_sign_then_the_chair_and_the_cycle_can_be_published(app, graded):
    """Each signature records who, the role, when and the results' fingerprint; the
    chair signs last; with everyone signed the cycle moves on to published."""
    s, cycle = graded
    with app.test_request_context():
        with pytest.raises(DomainError, match="(?i)last|最后"):
            sign(cycle, s["chair"], PASSWORD)
        with pytest.raises(DomainError):
            advance(cycle, s["chair"])
    assert CycleSignature.select().count() == 0
    _sign_all(app, s, cycle)
    rows = list(CycleSignature.select().order_by(CycleSignature.id))
    assert [r.role for r in rows] == ["member", "member", "chair"]
    assert {r.fingerprint for r in rows} == {results_fingerprint(cycle)}
    assert all(r.signed_at for r in rows)
    assert AuditEvent.select().where(AuditEvent.action == "cycle_signed").count() == 3
    with app.test_request_context():
        assert advance(cycle, s["chair"]).phase == "published"
    # Publishing files a tier change request for every final grade the customer does
    # not hold yet (the test customers hold none), each waiting for its approvers.
    from models import Assessment, TierChangeRequest
    requests = {r.assessment_id: r for r in TierChangeRequest.select()}
    sheets = list(Assessment.select().where(Assessment.cycle == cycle))
    assert set(requests) == {sheet.id for sheet in sheets}
    for sheet in sheets:
        assert (requests[sheet.id].to_tier_id, requests[sheet.id].source,
                requests[sheet.id].status) == (sheet.final_tier_id, "cycle", "open")


def test_wrong_password_twice_or_outside_signing_is_refused(app, make):
    """A wrong password, a second signature and signing outside the phase are each
    refused, and nothing is recorded."""
    s, cycle = signing_cycle(app, make, phase="committee")
    member = s["members"][0]
    with app.test_request_context():
        with pytest.raises(DomainError):
            sign(cycle, member, PASSWORD)  # still in committee review
        GradingCycle.update(phase="signing").where(GradingCycle.id == cycle.id).execute()
        with pytest.raises(DomainError, match="(?i)password|密码"):
            sign(cycle, member, "wrong password")
        assert CycleSignature.select().count() == 0
        sign(cycle, member, PASSWORD)
        with pytest.raises(DomainError):
            sign(cycle, member, PASSWORD)
        outsider = make.user("outsider", roles=("committee_member",))
        with pytest.raises(DomainError):
            sign(cycle, outsider, PASSWORD)
    assert CycleSignature.select().count() == 1


def test_signed_results_cannot_change_and_reopening_clears_signatures(app, graded):
    """Once signed no grade changes; reopening (audited) clears every signature and
    lets the chair change a grade, which changes the fingerprint."""
    s, cycle = graded
    sheet = cycle.assessments.first()
    with app.test_request_context():
        sign(cycle, s["members"][0], PASSWORD)
        with pytest.raises(DomainError):
            reopen(sheet, s["chair"], "")
        with pytest.raises(DomainError):
            reopen_cycle(cycle, s["members"][0], "不是主任")
        before = results_fingerprint(cycle)
        reopen_cycle(cycle, s["chair"], "资信数据有误")
        assert CycleSignature.select().count() == 0
        assert GradingCycle.get_by_id(cycle.id).phase == "committee"
        event = AuditEvent.get(AuditEvent.action == "cycle_reopened")
        assert event.before_data["signatures"][0]["fingerprint"] == before
        reopen(sheet, s["chair"], "复核")
        finalise(sheet, s["chair"], sheet.template.bands_desc()[-1].tier, "资信数据有误，降级")
        assert results_fingerprint(cycle) != before


def test_a_signed_sheet_takes_no_score_grade_or_reopening(app, graded):
    """Once a member has signed, no member scores a sheet, the chair neither sets nor
    reopens a final grade, and the results keep the fingerprint that was signed."""
    s, cycle = graded
    sheet = cycle.assessments.first()
    criterion = sheet.template.criteria_with_levels()[0]
    with app.test_request_context():
        sign(cycle, s["members"][0], PASSWORD)
        signed = results_fingerprint(cycle)
        with pytest.raises(DomainError):
            save_score(sheet, s["members"][1], "committee", criterion.id, None,
                       criterion.max_points, "", 0)
        with pytest.raises(DomainError):
            reopen(sheet, s["chair"], "复核")
        with pytest.raises(DomainError):
            finalise(sheet, s["chair"], sheet.template.bands_desc()[-1].tier, "降级")
    assert results_fingerprint(cycle) == signed


def test_signing_through_the_page(app, client, graded):
    """A member signs on the signing page with their password; a wrong one shows why."""
    s, cycle = graded
    member = s["members"][0]
    login(client, member.username)
    page = client.get(f"/cycles/{cycle.id}/signing").get_data(as_text=True)
    assert results_fingerprint(cycle) in page
    response = client.post(f"/cycles/{cycle.id}/signing", data={"password": "nope"},
                           follow_redirects=True)
    assert re.search("(?i)password is not correct|密码", response.get_data(as_text=True))
    assert CycleSignature.select().count() == 0
    response = client.post(f"/cycles/{cycle.id}/signing", data={"password": PASSWORD})
    assert response.status_code == 303
    assert CycleSignature.get().user_id == member.id
    assert member.display_name in client.get(f"/cycles/{cycle.id}/signing").get_data(
        as_text=True)


def _flashes(response):
    """The messages flashed on a page, in order."""
    return re.findall(r'<li class="flash[^"]*">([^<]*)</li>', response.get_data(as_text=True))


def _failed_logins(user):
    return AuditEvent.select().where(AuditEvent.action == "login_failed",
                                     AuditEvent.object_id == user.username).count()


def test_who_may_not_sign_gets_the_same_answer_whatever_the_password(app, client, graded,
                                                                      make):
    """Someone outside the committee gets the same refusal with the right and a wrong
    password, and the password is not checked (no failure is recorded)."""
    s, cycle = graded
    outsider = make.user("director2", roles=("sales_director",))
    login(client, outsider.username)
    url = f"/cycles/{cycle.id}/signing"
    right = client.post(url, data={"password": PASSWORD})
    wrong = client.post(url, data={"password": "a guess"})
    assert right.status_code == wrong.status_code == 200
    assert _flashes(right) == _flashes(wrong) == ["只有评级委员会成员可以签字确认评定结果。"]
    assert _failed_logins(outsider) == 0
    assert CycleSignature.select().count() == 0


def test_outside_the_signing_phase_the_answer_is_the_same_whatever_the_password(app, client,
                                                                                 make):
    """A committee member signing before the signing phase gets the same refusal with
    the right and a wrong password, and no failure is recorded."""
    s, cycle = signing_cycle(app, make, phase="committee")
    member = s["members"][0]
    login(client, member.username)
    url = f"/cycles/{cycle.id}/signing"
    right = client.post(url, data={"password": PASSWORD})
    wrong = client.post(url, data={"password": "a guess"})
    assert right.status_code == wrong.status_code == 200
    assert _flashes(right) == _flashes(wrong)
    assert "签字阶段" in _flashes(right)[0]
    assert _failed_logins(member) == 0
    assert CycleSignature.select().count() == 0


def test_wrong_passwords_at_signing_count_toward_the_login_limit(app, client, graded):
    """Four wrong passwords at signing and one at the login lock the user name for that
    address: the right password then gets 429 at the login."""
    s, cycle = graded
    member = s["members"][0]
    login(client, member.username)
    for _ in range(4):
        response = client.post(f"/cycles/{cycle.id}/signing", data={"password": "guess"})
        assert response.status_code == 200
        assert "密码不正确" in _flashes(response)[0]
    other = app.test_client()
    assert login(other, member.username, "guess").status_code == 200
    response = login(other, member.username)
    assert response.status_code == 429
    assert "尝试次数过多" in response.get_data(as_text=True)
    assert _failed_logins(member) == 5
    assert CycleSignature.select().count() == 0


def test_while_limited_signing_is_refused_without_checking_the_password(app, client, graded):
    """While the user name is locked for this address, even the right password at the
    signing form gets 429 and signs nothing."""
    s, cycle = graded
    member = s["members"][0]
    login(client, member.username)
    guesser = app.test_client()  # the same address
    for _ in range(5):
        login(guesser, member.username, "guess")
    response = client.post(f"/cycles/{cycle.id}/signing", data={"password": PASSWORD})
    assert response.status_code == 429
    assert "尝试次数过多" in _flashes(response)[0]
    assert CycleSignature.select().count() == 0
    assert client.get("/").status_code == 200  # refused, not logged out


def test_five_wrong_passwords_at_signing_end_every_session(app, client, graded):
    """The fifth wrong password at signing ends all the user's sessions (audited) and
    sends them to the login page."""
    s, cycle = graded
    member = s["members"][0]
    login(client, member.username)
    elsewhere = app.test_client()
    login(elsewhere, member.username)
    version = User.get_by_id(member.id).session_version
    url = f"/cycles/{cycle.id}/signing"
    for _ in range(4):
        assert client.post(url, data={"password": "guess"}).status_code == 200
    response = client.post(url, data={"password": "guess"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert "您已在所有设备上退出登录" in page
    for browser in (client, elsewhere):
        response = browser.get(f"/cycles/{cycle.id}/signing")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    assert User.get_by_id(member.id).session_version == version + 1
    event = AuditEvent.get(AuditEvent.action == "sessions_revoked")
    assert (event.object_type, event.object_id, event.actor_id) == ("user", str(member.id),
                                                                    member.id)
    assert event.after_data["failures"] == 5
    assert _failed_logins(member) == 5
    assert CycleSignature.select().count() == 0


# --- The signed PDF and /verify ------------------------------------------------

@pytest.fixture
def signed_report(app, client, graded, immediate_jobs):
    """The committee signed; the chair downloads the report."""
    s, cycle = graded
    _sign_all(app, s, cycle)
    login(client, "chair")
    response = fetch_report(client, cycle)
    assert response.status_code == 200
    return s, cycle, response.data


def _verify(client, data, name="report.pdf"):
    response = client.post("/verify", data={"file": (io.BytesIO(data), name)},
                           content_type="multipart/form-data")
    assert response.status_code < 500
    return response.get_data(as_text=True)


def test_signed_report_validates_in_pyhanko(app, signed_report):
    """pyHanko, trusting only the organisation's certificate, finds the signature
    intact, trusted, and covering the whole file; the signature page lists the signers."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    from services.signing import _run, signer
    s, cycle, data = signed_report
    with app.app_context():
        cert = signer().signing_cert
    reader = PdfFileReader(io.BytesIO(data))
    [embedded] = reader.embedded_signatures
    context = ValidationContext(trust_roots=[cert])
    status = _run(lambda: async_validate_pdf_signature(embedded, context))
    assert status.intact and status.valid and status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    text = pdf_text(data)
    for user in (*s["members"], s["chair"]):
        assert user.display_name in text
    assert results_fingerprint(cycle) in text.replace("\n", "").replace(" ", "")
    assert RARE_NAME in text


@pytest.mark.skipif(not shutil.which("pdfsig") or not shutil.which("certutil"),
                    reason="poppler-utils and libnss3-tools are needed")
def test_signed_report_validates_in_pdfsig(app, signed_report, tmp_path):
    """poppler's pdfsig, with the organisation's certificate trusted in an NSS
    database, finds the signature valid and the certificate trusted; after one
    changed byte it does not."""
    from asn1crypto import pem

    from services.signing import signer
    _, _, data = signed_report
    with app.app_context():  # the organisation's certificate, to trust in NSS
        (tmp_path / "org.pem").write_bytes(pem.armor("CERTIFICATE",
                                                     signer().signing_cert.dump()))
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "tierdesk", "-t", "CT,C,C",
                    "-i", str(tmp_path / "org.pem")], check=True)
    (tmp_path / "report.pdf").write_bytes(data)
    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(tmp_path / "report.pdf")],
                         capture_output=True, text=True).stdout
    assert "Signature is Valid" in out, out
    assert "Certificate is Trusted" in out, out
    assert "Total document signed" in out, out
    (tmp_path / "bad.pdf").write_bytes(_flip(data))
    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(tmp_path / "bad.pdf")],
                         capture_output=True, text=True).stdout
    assert "Signature is Valid" not in out, out


def _flip(data, at=None):
    """The document with one byte changed inside the signed content."""
    bad = bytearray(data)
    at = at if at is not None else len(data) // 3
    bad[at] = ord("X") if bad[at] != ord("X") else ord("Y")
    return bytes(bad)


def test_verify_accepts_the_genuine_report_and_names_its_cycle(client, signed_report):
    """/verify says valid, names the cycle and that its results still match."""
    _, cycle, data = signed_report
    page = _verify(client, data)
    assert cycle_valid(page) is True
    assert cycle.name in page
    assert 'data-testid="match"' in page


def test_verify_rejects_a_changed_byte(client, signed_report):
    """One flipped byte: not valid, with the reason."""
    _, _, data = signed_report
    page = _verify(client, _flip(data))
    assert 'data-testid="verdict"' in page
    assert cycle_valid(page) is False


def cycle_valid(page):
    """True/False as the verdict on the page says, None without a verdict."""
    if 'data-valid="yes"' in page:
        return True
    return False if 'data-valid="no"' in page else None


def test_verify_rejects_an_appended_incremental_update(app, client, signed_report):
    """An incremental update appended after signing (here: a changed title) is
    reported as an addition after the signature."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    from services.signing import verify
    _, _, data = signed_report
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    info = writer.trailer["/Info"]
    info["/Title"] = generic.TextStringObject("改过的标题")
    writer.update_container(info)
    out = io.BytesIO()
    writer.write(out)
    with app.test_request_context():
        verdict = verify(out.getvalue())
    assert not verdict.valid and "增量更新" in verdict.reason  # appended after signing
    assert cycle_valid(_verify(client, out.getvalue())) is False


def test_verify_rejects_a_foreign_key(app, client, signed_report, tmp_path):
    """The same report signed with another organisation's key is not valid."""
    from services import reports, signing
    s, cycle, _ = signed_report
    with app.test_request_context():
        unsigned = reports.report_pdf(cycle, tmp_path / "unsigned.pdf")
        app.config["SIGNING_DIR"] = str(tmp_path / "other")
        with unsigned.open("rb") as source, (tmp_path / "foreign.pdf").open("w+b") as out:
            signing.sign_pdf(source, out)
        foreign = (tmp_path / "foreign.pdf").read_bytes()
        app.config["SIGNING_DIR"] = str(tmp_path / "signing")
        verdict = signing.verify(foreign)
    assert not verdict.valid and "密钥不属于本单位" in verdict.reason
    assert cycle_valid(_verify(client, foreign)) is False


def test_verify_answers_bad_uploads_clearly(app, client, signed_report):
    """A non-PDF, an oversized file, an unsigned PDF and a truncated one each get a
    clear answer, never a 500."""
    from services import reports
    _, cycle, data = signed_report
    page = _verify(client, b"hello, not a pdf", "notes.txt")
    assert cycle_valid(page) is False and "PDF" in page
    with app.test_request_context():
        unsigned = report_bytes(reports.report_pdf, cycle)
    page = _verify(client, unsigned)
    assert cycle_valid(page) is False
    assert _verify(client, data[:2000]) and cycle_valid(_verify(client, data[:2000])) is False
    app.config["VERIFY_MAX_BYTES"] = 1000
    page = _verify(client, data)
    assert "MB" in page and cycle_valid(page) is False
    response = client.post("/verify", data={}, content_type="multipart/form-data")
    assert response.status_code == 400


def test_the_generated_key_and_its_folder_are_this_users_alone(app, signed_report, tmp_path):
    """The key made on first use is 0600 in a signing folder of mode 0700."""
    from tests.test_db import mode
    directory = tmp_path / "signing"
    assert (mode(directory), mode(directory / "org-key.pem")) == ("0o700", "0o600")


def test_the_dashboard_asks_members_then_the_chair_to_sign(app, client, graded):
    """Members see a signing task; the chair sees one only when the members have signed."""
    s, cycle = graded
    login(client, s["members"][0].username)
    assert 'data-testid="sign-task"' in client.get("/").get_data(as_text=True)
    chair = app.test_client()
    login(chair, "chair")
    assert 'data-testid="sign-task"' not in chair.get("/").get_data(as_text=True)
    with app.test_request_context():
        for member in s["members"]:
            sign(cycle, member, PASSWORD)
    assert 'data-testid="sign-task"' in chair.get("/").get_data(as_text=True)
    assert 'data-testid="sign-task"' not in client.get("/").get_data(as_text=True)


def test_a_configured_pkcs12_key_signs_the_report(app, make, tmp_path):
    """With SIGNING_PKCS12 set, the report is signed with that key, and /verify
    trusts it (and no key is generated)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
    from cryptography.x509.oid import NameOID

    from services import reports, signing
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "某某集团有限公司")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    p12 = tmp_path / "org.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"org", key, cert, None, BestAvailableEncryption(b"p12-secret")))
    app.config.update(SIGNING_PKCS12=str(p12), SIGNING_PKCS12_PASSWORD="p12-secret")
    s, cycle = signing_cycle(app, make)
    _sign_all(app, s, cycle)
    with app.test_request_context():
        data = report_bytes(reports.signed_report_pdf, cycle)
        verdict = signing.verify(data)
    assert verdict.valid and verdict.cycle_id == cycle.id
    assert "某某集团有限公司" in verdict.signer
    assert not (tmp_path / "signing").exists()


def test_renaming_a_customer_or_a_tier_does_not_change_what_was_signed(app, graded):
    """The fingerprint covers what the assessments hold and the phases lock: a customer
    renamed, or a tier's code changed, after signing leaves it as it was."""
    from models import Customer, Tier
    s, cycle = graded
    before = results_fingerprint(cycle)
    Customer.update(name="改名后的客户").where(Customer.id == s["customers"][1].id).execute()
    Tier.update(code="AA").where(Tier.code == "A").execute()
    assert results_fingerprint(cycle) == before
    from models import Assessment
    Assessment.update(rationale="改过的理由").where(Assessment.cycle == cycle).execute()
    assert results_fingerprint(cycle) != before  # what was signed does change it


# --- The address printed in the report ------------------------------------------

EVIL = {"Host": "evil.example"}


def login_at_evil(client, username):
    """Log in through a request to evil.example: the session cookie is that host's."""
    response = client.post("/login", data={"username": username, "password": PASSWORD},
                           headers=EVIL)
    assert response.status_code == 302


def test_the_signed_report_names_public_url_never_the_requests_host(app, client, graded,
                                                                     immediate_jobs):
    """With PUBLIC_URL set, the report asked for with `Host: evil.example` names exactly
    PUBLIC_URL/verify, in words and in its QR code."""
    from services import reports
    s, cycle = graded
    _sign_all(app, s, cycle)
    login_at_evil(client, "chair")
    response = fetch_report(client, cycle, headers=EVIL)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    assert "evil.example" not in text
    assert re.findall(r"https?://\S+", text) == [f"{PUBLIC_URL}/verify"] * 2  # cover, back
    with app.test_request_context(headers=EVIL):
        context = reports._report_context(cycle)
    assert context["verify_url"] == f"{PUBLIC_URL}/verify"
    assert context["qr"] == reports.qr_svg_data_uri(f"{PUBLIC_URL}/verify")
    with app.app_context():
        from services.signing import verify
        assert verify(response.data).valid


def test_without_public_url_the_signed_report_is_refused_with_why(app, client, graded):
    """Without PUBLIC_URL a report that would be signed is refused: the user reads why on
    the report page, no PDF is sent (least of all one naming the request's host), and the
    log tells the administrator what to set."""
    s, cycle = graded
    _sign_all(app, s, cycle)
    app.config["PUBLIC_URL"] = None
    login_at_evil(client, "chair")
    response = client.get(f"/cycles/{cycle.id}/report.pdf", headers=EVIL)
    assert response.status_code == 303 and response.mimetype != "application/pdf"
    assert response.headers["Location"].endswith(f"/cycles/{cycle.id}/report")
    assert b"evil.example" not in response.data
    page = client.get(response.headers["Location"], headers=EVIL).get_data(as_text=True)
    assert "暂时无法生成签字版报告" in page and "PUBLIC_URL" in page
    assert "evil.example" not in page


def test_without_public_url_the_refusal_is_logged_for_the_administrator(app, graded, caplog):
    """The administrator's explanation (set PUBLIC_URL, never the Host header) is in the log."""
    from services import reports
    s, cycle = graded
    _sign_all(app, s, cycle)
    app.config["PUBLIC_URL"] = None
    with app.test_request_context(headers=EVIL), pytest.raises(reports.PublicURLMissing):
        report_bytes(reports.signed_report_pdf, cycle)
    assert "PUBLIC_URL is not set" in caplog.text and "Host header" in caplog.text


def test_without_public_url_a_draft_report_prints_no_address(app, client, graded,
                                                              immediate_jobs):
    """An unsigned draft asked for with `Host: evil.example` and no PUBLIC_URL prints no
    verification address and no QR code at all."""
    from services import reports
    s, cycle = graded
    app.config["PUBLIC_URL"] = None
    login_at_evil(client, "chair")
    response = fetch_report(client, cycle, headers=EVIL)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    assert cycle.name in text
    assert "evil.example" not in text and "/verify" not in text and "核验本文件" not in text
    with app.test_request_context(headers=EVIL):
        context = reports._report_context(cycle)
    assert context["verify_url"] is None and context["qr"] is None
