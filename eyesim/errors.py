"""User-facing errors: anything a user can cause raises EyesimError with a one-line message."""


class EyesimError(Exception):
    """A problem with the user's input (model, hardware file, mapping, options).

    The CLI prints ``str(error)`` on one line and exits with code 2.
    """


def first_line(err: BaseException) -> str:
    """The first non-blank line of an exception's text (libraries often raise several lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def printable(text: str) -> str:
    """``text`` safe to print on a terminal line: line breaks, escape sequences and other control characters (from
    file, layer or op names) shown escaped (``\\x1b``), never acted on."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def located(label: str, message: str) -> EyesimError:
    """``label: message`` as one line (white space folded), e.g. a file and what is wrong with it."""
    return EyesimError(" ".join(f"{label}: {message}".split()))
