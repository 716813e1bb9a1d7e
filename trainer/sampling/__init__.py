"""Making images from an export: `latents` (seeds, classes, truncation, translation of a folder),
`composites` (class grids, style-mixing grids, interpolation loops). Families that sample from
something other than latents keep their own sampling beside their code (e.g. super-resolution's
tiled upscaling) and the CLI only dispatches to it."""
