"""User-facing errors: anything a user can cause raises EyesimError with a one-line message."""


class EyesimError(Exception):
    """A problem with the user's input (model, hardware file, mapping, options).

    The CLI prints ``str(error)`` on one line and exits with code 2.
    """
