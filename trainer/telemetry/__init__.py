"""What a run tells people and programs while it trains.

`catalog` lists every Prometheus series once; `prometheus` updates them for one rank;
`endpoint` serves /metrics and writes the file-service-discovery targets file; `jsonl` writes
`RUN/metrics.jsonl`; `tensorboard` writes the same scalars and the sample grids as TensorBoard
events (rank 0, `metrics.tensorboard=true`); `console` is the progress bar; `probes` measure
gradient norms, engine state and diversity; `device_info` names the hardware; `bench` measures
what the metrics cost.
"""
