"""Errors that carry a message meant for the person at the keyboard."""


class CadenceError(Exception):
    """Bad input or a setting that cannot work; the CLI prints it and exits 2."""


class InputError(CadenceError):
    """Input from outside (a file, an argument, a request) failed validation.

    `problems` holds one line per problem so that every bad row is reported at once.
    """

    def __init__(self, summary: str, problems: list[str] | None = None) -> None:
        self.summary = summary
        self.problems = problems or []
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.summary
        return "\n".join([self.summary, *(f"  {p}" for p in self.problems)])
