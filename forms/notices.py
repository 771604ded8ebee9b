"""Forms of notices: a person's channels, and the admin's group robots."""
from wtforms import BooleanField, PasswordField, SelectField, StringField, ValidationError
from wtforms.validators import Length, Optional

from forms import Form, choices
from i18n import lazy_gettext as _l
from models.notices import CHANNEL_CHOICES, PLATFORMS, webhook_refusal


class PreferencesForm(Form):
    """How each kind of notice reaches me."""
    approval_waiting = SelectField(_l("An approval step is waiting for you"),
                                   choices=choices(CHANNEL_CHOICES))
    request_decided = SelectField(_l("Your request was decided"),
                                  choices=choices(CHANNEL_CHOICES))

    def chosen(self):
        return {"approval_waiting": self.approval_waiting.data,
                "request_decided": self.request_decided.data}


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
