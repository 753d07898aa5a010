"""What every training run writes beside its weights, as data: the columns of ``curve.csv`` and the
compute keys of ``metrics.json``. ``train.accounting`` writes them and ``report.tidy`` reads them."""

CURVE_COLUMNS = ("phase", "step", "samples", "seconds", "flops", "flops_total", "loss", "val_metric", "val_value")
TOTAL_KEYS = ("wall_seconds", "train_samples", "train_flops", "device_hours")  # ``compute_total``: upstream runs included
