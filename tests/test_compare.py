"""`compare`: one table across schemes, files written, fronts plotted."""
import json

import numpy as np

from neurodeploy.cli import main


def test_compare_bitplane_and_rate(tmp_path, capsys):
    x = np.load("models/digits_test_x.npy")[:120]
    y = np.load("models/digits_test_y.npy")[:120]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "cmp"
    rc = main(["compare", "models/digits_qcfs.onnx", "--input", str(tmp_path / "x.npy"), "--labels",
               str(tmp_path / "y.npy"), "--schemes", "bitplane,rate", "--rate-timesteps", "4,16",
               "--bitplane-lossy", "3", "-o", str(out)])
    assert rc == 0
    d = json.loads((out / "compare.json").read_text())
    configs = {r["config"]: r for r in d["rows"]}
    assert set(configs) == {"bitplane", "bitplane_lossy_T3", "rate_T4", "rate_T16"}
    # the exact scheme matches the float model's predictions' accuracy on this data
    assert configs["bitplane"]["accuracy"] >= configs["bitplane_lossy_T3"]["accuracy"]
    assert configs["rate_T16"]["latency_steps"] > configs["rate_T4"]["latency_steps"]
    for name in configs:
        assert (out / name / "ir.json").is_file()
    page = (out / "compare.html").read_text()
    assert page.count("<figure id=") == 2 and page.count("<svg ") == 2      # inline SVG, text as text
    assert "| bitplane | bitplane | defaults |" in capsys.readouterr().out
