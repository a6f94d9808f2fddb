"""One exception root: the CLI and the service map every `AutomixError` to a one-line message."""


class AutomixError(Exception):
    """Base class of every error automix reports to a user."""


class AudioInputError(AutomixError):
    """An input file is missing, unreadable, not audio, silent or too short."""


class OutputError(AutomixError):
    """An output cannot be written (exists, equals the input, folder not writable, disk full)."""


class SettingsError(AutomixError):
    """A preset, target, settings file or amount is unknown or out of range."""


class PluginError(AutomixError):
    """A plug-in automix exports to is not installed or cannot be loaded."""


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of ``exc``'s message, which is what a user is shown; ``default`` (the
    exception's type name unless given) when the message is empty."""
    lines = str(exc).strip().splitlines()
    if lines:
        return lines[0]
    return type(exc).__name__ if default is None else default


def did_you_mean(text: str, names: list[str]) -> str:
    """`` (did you mean 'rock'?)`` when one of ``names`` is close to ``text``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(text.lower(), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
