"""The solver demo (``python -m experiments solver-demo``) prints one row per registered method."""
import argparse

from solvers import available, demo


def test_demo_prints_every_method_with_a_small_error(capsys):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    assert demo.run(parser.parse_args(["--step-size", "0.01", "--rtol", "1e-6"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == list(demo.HEADER[:-1]) + ["max", "error"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == available()
    for name, row in rows.items():
        error = float(row[-1])
        assert error < (0.1 if row[2] == "1" else 1e-3), row  # first order at h = 0.01 over t in [0, 2]
    assert rows["rk4"][4] == str(4 * 200) and rows["dopri5"][6].isdigit() and rows["rk4"][7] == "0"
    assert rows["backward_euler"][1] == "implicit" and int(rows["gauss_legendre4"][7]) >= 40  # stage iterations
