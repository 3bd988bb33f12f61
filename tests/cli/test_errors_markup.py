"""An error message is printed as it is: brackets in a value or a path are not rich markup."""

from __future__ import annotations

import pytest

from edgegnn.cli.output import fail
from edgegnn.errors import DataError


def test_a_message_with_brackets_is_printed_verbatim(capsys):
    error = DataError("gloo said [/__w/pytorch/third_party/gloo/pair.cc:537] Connection closed",
                      hint="see [rank 1]")
    with pytest.raises(SystemExit) as exited:
        fail(error)
    assert exited.value.code == 1
    printed = capsys.readouterr().err
    assert "error: gloo said [/__w/pytorch/third_party/gloo/pair.cc:537] Connection closed" in printed
    assert "hint: see [rank 1]" in printed
