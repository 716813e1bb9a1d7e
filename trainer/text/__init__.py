"""Text for text-to-image families: the word tokenizer built from training captions
(`tokenizer`), the text encoders (`encoders`: builtin, trained with the GAN, or a frozen Hugging
Face CLIP/T5 model via `hf:PATH`) and the caption decoder of captioned shards (`captions`).

Token ids travel as one int64 tensor [N, L] padded with -1, so a single tensor carries both the
ids and the attention mask through the data stream, the losses and D's `(img, c)` signature.
"""
