"""WTForms classes, one module per domain."""
from wtforms.fields.choices import SelectChoice


def choices(pairs):
    """SelectField choices from a mapping or (value, label) pairs."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [SelectChoice(value, label) for value, label in items]
