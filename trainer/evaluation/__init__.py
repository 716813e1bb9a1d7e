"""Sample-quality evaluation: metric math on feature arrays (`metrics`), feature networks
(`features`, `digit_features`, `inception`), cached real-data statistics (`stats`) and the
`hiresgan eval` driver (`run`). Metric code takes numpy arrays only, so it is tested against
closed-form answers without any network."""
