"""The convscale command: output, and one-line errors with a non-zero exit and no traceback."""

import subprocess
import sys

import pytest

from convscale.cli import main


def test_list(capsys):
    assert main(["list", "efficientnet_b*"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_b0" in out and "5.29M" in out and "77.1" in out
    assert "test_efficientnet" not in out


def test_info(capsys):
    assert main(["info", "efficientnetv2_s"]) == 0
    out = capsys.readouterr().out
    assert "21,458,488" in out and "at 300 (train)" in out and "at 384 (test)" in out and "83.9" in out
    assert "FusedMBConv4" in out and "MBConv6" in out


@pytest.mark.parametrize("argv", [["info", "efficientnet_b9"], ["list", "nothing*"]])
def test_errors_are_one_line(argv):
    proc = subprocess.run([sys.executable, "-m", "convscale", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("convscale: error:")
    assert "Traceback" not in proc.stderr


def test_help_lists_subcommands():
    proc = subprocess.run([sys.executable, "-m", "convscale", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "list" in proc.stdout and "info" in proc.stdout


def test_roadmap(capsys):
    assert main(["roadmap"]) == 0
    out = capsys.readouterr().out
    assert "roadmap_00_resnet50" in out and "roadmap_16_sep_downsample" in out
    assert "25.56M   4.09   4.09  76.13" in out  # ResNet-50: params, our GMACs, the paper's, its top-1
    assert "28.59M   4.46   4.49  81.97" in out  # ConvNeXt-T


def test_a_reader_that_leaves_is_not_an_error(monkeypatch):
    """`convscale list --pretrained | head`: a closed pipe ends quietly instead of printing an error."""
    import io

    from convscale.cli import main

    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    class Err(io.StringIO):
        def close(self):  # the CLI closes stderr so that Python prints nothing more at exit
            self.closed_by_cli = True

    err = Err()
    monkeypatch.setattr("sys.stdout", Closed())
    monkeypatch.setattr("sys.stderr", err)
    assert main(["list", "--pretrained"]) == 0
    assert err.getvalue() == "" and err.closed_by_cli
