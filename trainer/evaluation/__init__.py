"""Sample-quality evaluation.

metrics         FID, KID, precision/recall, IS on feature arrays (numpy only, closed-form tested)
features        feature extractors: uint8 images -> (features, class probabilities)
digit_features  the shipped digit CNN (the embedded digits' feature network)
inception       the FID Inception v3 definition and its pickle-free weight converter
stats           real-image features from shards, cached per dataset/network fingerprint
run             `hiresgan eval` on one export (one process or every rank under torchrun); its core
                (load_real, evaluate_generator) takes a module and (rank, world size), no process-group set-up
periodic        evaluation inside training every eval.every_kimg, on all ranks (eval.jsonl + Prometheus)
watch           periodic evaluation of a run's checkpoints by a sidecar (eval.jsonl + Prometheus)
"""
