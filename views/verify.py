"""/verify: upload a PDF and learn whether it is a report this organisation signed,
which cycle it reports and whether the results still match the database."""
from flask import Blueprint, current_app, render_template

from forms.reports import VerifyForm
from models import GradingCycle
from models.signing import results_fingerprint
from services.signing import verify

bp = Blueprint("verify", __name__)

VERIFY_MAX_BYTES = 10 * 1024 * 1024


@bp.route("/verify", methods=["GET", "POST"])
def index():
    """The upload form; on POST the verdict (never a 500 for a bad file)."""
    form = VerifyForm()
    verdict = cycle = matches = None
    too_large = False
    if form.validate_on_submit():
        limit = current_app.config.get("VERIFY_MAX_BYTES", VERIFY_MAX_BYTES)
        data = form.file.data.read(limit + 1)
        if len(data) > limit:
            too_large = True
        else:
            verdict = verify(data)
            if verdict.valid:
                cycle = GradingCycle.get_or_none(GradingCycle.id == verdict.cycle_id)
                matches = cycle is not None and results_fingerprint(cycle) == verdict.fingerprint
    status = 200 if not form.is_submitted() or verdict is not None or too_large else 400
    return render_template("verify/index.html", form=form, verdict=verdict, cycle=cycle,
                           matches=matches, too_large=too_large,
                           limit_mb=current_app.config.get("VERIFY_MAX_BYTES",
                                                           VERIFY_MAX_BYTES) // (1024 * 1024)
                           ), status
