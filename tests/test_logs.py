"""log.csv and validation.csv: rows kept, rows dropped, on resume and when read."""

import numpy as np

from utils.outputs.logs import CsvLog, read_log_csv

COLUMNS = ["step", "loss", "kl"]


def test_a_row_cut_inside_its_last_number_is_dropped_on_resume(tmp_path):
    path = tmp_path / "log.csv"
    # A kill during the write of step 3: "3,1.5,2.25\n" became "3,1.5,2.2".
    path.write_text("step,loss,kl\n1,1.5,2.5\n2,1.25,2.75\n3,1.5,2.2")
    log = CsvLog(path, COLUMNS, resume_step=10)
    log.append({"step": 3, "loss": 1.5, "kl": 2.25})
    log.close()
    assert path.read_text().splitlines() == [
        "step,loss,kl", "1,1.5,2.5", "2,1.25,2.75", "3,1.5,2.25",
    ]  # fmt: skip


def test_rows_after_the_resumed_checkpoint_are_dropped(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss,kl\n1,1,1\n2,2,2\n3,3,3\n")
    CsvLog(path, COLUMNS, resume_step=2).close()
    assert path.read_text().splitlines() == ["step,loss,kl", "1,1,1", "2,2,2"]


def test_reading_a_log_skips_a_cut_last_row_and_keeps_empty_cells(tmp_path):
    path = tmp_path / "validation.csv"
    path.write_text("step,loss,kl\n5,1.5,\n10,1.25,2.5\n15,1.2")
    log = read_log_csv(path)
    np.testing.assert_array_equal(log["step"], [5, 10])
    np.testing.assert_array_equal(log["kl"], [np.nan, 2.5])
    assert read_log_csv(tmp_path / "missing.csv") == {}
