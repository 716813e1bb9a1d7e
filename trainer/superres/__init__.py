"""Super-resolution (family `esrgan`, docs/SUPERRES.md): degradations that make the training
pairs (`degrade`, `realesrgan`), the stream decoder (`degrade.PairDecoder`), tiled upscaling
(`upscale`), folder upscaling for `hiresgan sample --upscale` (`sample`) and the optional
perceptual loss (`perceptual`). Metrics live in `trainer.evaluation.superres`."""
