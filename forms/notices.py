"""Forms of notices: a person's channels, and the admin's group robots."""
from wtforms import BooleanField, PasswordField, SelectField, StringField, ValidationError
from wtforms.validators import Length, Optional

from forms import Form, choices
from i18n import lazy_gettext as _l
from models.notices import CHANNEL_CHOICES, KINDS, PLATFORMS, webhook_refusal


class PreferencesForm(Form):
    """How each kind of notice reaches me: a field per kind (CHOSEN_KINDS), added
    below."""

    def kind_fields(self):
        return [getattr(self, kind) for kind in CHOSEN_KINDS]

    def chosen(self):
        return {kind: getattr(self, kind).data for kind in CHOSEN_KINDS}


# Every kind a person receives (the admin's test message is not chosen).
CHOSEN_KINDS = [kind for kind in KINDS if kind != "test"]
for _kind in CHOSEN_KINDS:
    setattr(PreferencesForm, _kind, SelectField(KINDS[_kind], choices=choices(CHANNEL_CHOICES)))


class RobotForm(Form):
    """A branch's (or the company's) group robot. The stored address and secret are
    never filled in: empty keeps them."""
    platform = SelectField(_l("Platform"), choices=choices(PLATFORMS))
    url = StringField(_l("Webhook address"), validators=[Optional(), Length(max=1000)])
    secret = PasswordField(_l("Signing secret"), validators=[Optional(), Length(max=200)],
                           description=_l("DingTalk and Feishu: the secret of the robot's signing "
                                          "setting. Leave empty to keep the stored one."))
    active = BooleanField(_l("Active"), default=True)

    def __init__(self, *args, creating=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.creating = creating
        if not creating:
            self.url.description = _l("Leave empty to keep the stored address.")

    def validate_url(self, field):
        url = (field.data or "").strip()
        if not url:
            if self.creating:
                raise ValidationError(_l("Give the robot's webhook address."))
            return
        refusal = webhook_refusal(self.platform.data, url)
        if refusal:
            raise ValidationError(str(refusal))
