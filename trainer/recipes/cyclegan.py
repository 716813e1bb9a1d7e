"""CycleGAN's step on a batch of domain A (the main stream) and one of domain B (the recipe's
extra stream "b" of `data.urls_b`, built by the loop like the main one): G main (adversarial both
ways + cycle-consistency + identity),
then D main on fakes drawn from per-domain image pools (Shrivastava et al. 2017)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from trainer import losses
from trainer.phases import ExtraStream, StepContext
from trainer.recipes.augmented import AugmentedRecipe

# Domain B's stream order is independent of domain A's (same run seed, this offset).
DOMAIN_B_SEED_OFFSET = 7919


class ImagePool:
    """The last `size` generated images; each query returns, per image, either it or (with
    probability 1/2, once full) a stored older one that it replaces, so D also sees past G's.
    The coin flips use the CPU generator (checkpointed with the rank's RNG state) and the count
    is a Python int, so the pool costs no device sync; checkpoints keep it for an exact resume."""

    def __init__(self, size: int, shape: tuple[int, ...], device: torch.device):
        self.size = size
        self.images = torch.zeros((max(size, 1), *shape), device=device)
        self.count = 0

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        coins = torch.rand([len(images)]).tolist()
        slots = torch.randint(self.size, [len(images)]).tolist()
        out = []
        for image, coin, slot in zip(images, coins, slots):
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif coin < 0.5:
                out.append(self.images[slot].clone().to(image.dtype))
                self.images[slot] = image
            else:
                out.append(image)
        return torch.stack(out)


class CycleGANRecipe(AugmentedRecipe):
    def __init__(self, cfg, *, device: torch.device):
        self.cfg, self.device = cfg, device
        self.d_reg_interval = 0
        shape = (cfg.data.channels, cfg.data.resolution, cfg.data.resolution)
        self.pool_a = ImagePool(cfg.loss.pool_size, shape, device)
        self.pool_b = ImagePool(cfg.loss.pool_size, shape, device)
        self.grid_real: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def extra_streams(self) -> dict[str, ExtraStream]:
        return {"b": ExtraStream(urls=self.cfg.data.urls_b, config_key="data.urls_b", seed_offset=DOMAIN_B_SEED_OFFSET)}

    def train_phases(self, ctx: StepContext) -> None:
        loss, G, D = self.cfg.loss, ctx.G, ctx.D
        real_a, real_b = ctx.batch.real, ctx.next_batch("b").real
        if self.grid_real is None:
            self.grid_real = (real_a[:8].detach().clone(), real_b[:8].detach().clone())
        fakes = {}

        def g_main() -> losses.PhaseLosses:
            fake_b, fake_a = G(real_a, direction="ab"), G(real_b, direction="ba")
            fakes["a"], fakes["b"] = fake_a.detach(), fake_b.detach()
            adversarial = losses.g_adversarial(loss.kind, D(fake_b, domain="b")) + losses.g_adversarial(
                loss.kind, D(fake_a, domain="a")
            )
            cycle = F.l1_loss(G(fake_b, direction="ba"), real_a) + F.l1_loss(G(fake_a, direction="ab"), real_b)
            total = adversarial + loss.cycle_weight * cycle
            terms = {"adversarial": adversarial.detach(), "cycle": cycle.detach()}
            if loss.identity_weight > 0:
                identity = F.l1_loss(G(real_b, direction="ab"), real_b) + F.l1_loss(G(real_a, direction="ba"), real_a)
                total = total + loss.identity_weight * identity
                terms["identity"] = identity.detach()
            return losses.PhaseLosses(total, terms)

        def d_main() -> losses.PhaseLosses:
            parts = [
                losses.discriminator_scores(
                    lambda x, c, dom=dom: D(x, domain=dom),
                    r,
                    None,
                    pool.query(fakes[dom]),
                    None,
                    kind=loss.kind,
                    gp_weight=loss.gp_weight,
                    drift_weight=loss.drift_weight,
                )
                for dom, r, pool in (("a", real_a, self.pool_a), ("b", real_b, self.pool_b))
            ]
            terms = {f"{key}_{dom}": value for dom, part in zip("ab", parts) for key, value in part.terms.items()}
            return losses.PhaseLosses(parts[0].total + parts[1].total, terms)

        ctx.run_phase("G_main", "G", g_main)
        ctx.run_phase("D_main", "D", d_main)

    @torch.no_grad()
    def grid_images(self, G_ema) -> tuple[torch.Tensor, int]:
        """Rows: real A, A->B, real B, B->A (the first batch this rank saw)."""
        a, b = self.grid_real
        return torch.cat([a, G_ema(a, direction="ab"), b, G_ema(b, direction="ba")]), 4

    def rank_tensors(self) -> dict[str, torch.Tensor]:
        out = {
            "pool_a": self.pool_a.images,
            "pool_a_count": torch.tensor(self.pool_a.count),
            "pool_b": self.pool_b.images,
            "pool_b_count": torch.tensor(self.pool_b.count),
        }
        if self.grid_real is not None:
            out["grid_a"], out["grid_b"] = self.grid_real
        return out

    def load_rank_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for pool, key in ((self.pool_a, "pool_a"), (self.pool_b, "pool_b")):
            pool.images.copy_(tensors[key])
            pool.count = int(tensors[f"{key}_count"])
        if "grid_a" in tensors:
            self.grid_real = (tensors["grid_a"].to(self.device), tensors["grid_b"].to(self.device))
