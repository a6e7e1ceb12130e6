"""Expected error locations for tests: lines are found by `# @tag` markers in the test file."""

import os
import re


class SourceLocations:
    """The lines of one test file, and the `On line N of file F:` blocks errors in it show."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        with open(self.path) as fh:
            self.src = fh.read().splitlines()

    def line(self, tag):
        hits = [i + 1 for i, s in enumerate(self.src) if re.search(f"# @{tag}(\\s|$)", s)]
        assert len(hits) == 1, f"tag {tag} found {len(hits)} times"
        return hits[0]

    def col(self, line_no, text, nth=0):
        code = self.src[line_no - 1].split("# @")[0]
        col = -1
        for _ in range(nth + 1):
            col = code.index(text, col + 1)
        return col

    def loc(self, msg, tag, text, nth=0):
        """The message with a one-line location: carets under `text` on the line tagged `tag`."""
        n = self.line(tag)
        col = self.col(n, text, nth)
        return f"{msg}\n\nOn line {n} of file {self.path}:\n{self.src[n - 1]}\n{' ' * col}{'^' * len(text)}\n"

    def loc_lines(self, msg, tag, text, end_tag, end_text):
        """A multi-line span: from `text` on line `tag` to the end of `end_text` on `end_tag`."""
        a, b = self.line(tag), self.line(end_tag)
        col = self.col(a, text)
        end_col = self.col(b, end_text) + len(end_text)
        src = "\n".join(self.src[a - 1 : b])
        carets = "^" * abs(end_col - col)
        return f"{msg}\n\nOn lines {a}-{b} of file {self.path}:\n{src}\n{' ' * col}{carets}\n"
