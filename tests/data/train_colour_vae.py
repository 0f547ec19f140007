"""Trains the small VAE that the live-preview tests use as a VAE whose latents mean colours.

    python tests/data/train_colour_vae.py [--steps 3000] [--out tests/data/colour_vae]

The preview engine's VAE has random weights: its decoded pictures are noise with no colour that
a linear map can follow, so it cannot show that a fitted preview gets colours right. This script
trains the same architecture (`zimage.engine.tiny_pipelines.build_vae`) for a few minutes on the CPU to
reconstruct solid colours, two-colour gradients and smooth colour fields, then sets the config's
`shift_factor` and `scaling_factor` from its latents' mean and spread (as the FLUX VAE's were
chosen), so pipeline-scaled latents have unit variance. Seeded; the saved folder
(`save_pretrained`, about 350 KB) is what the tests load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from zimage.engine.latent_preview import colour_pictures  # noqa: E402
from zimage.engine.tiny_pipelines import build_vae  # noqa: E402

SIDE = 32
BATCH = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "colour_vae")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    vae = build_vae().train()
    optimiser = torch.optim.Adam(vae.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=args.steps)
    started = time.perf_counter()
    for step in range(args.steps):
        pictures = colour_pictures(BATCH, SIDE, generator)
        posterior = vae.encode(pictures).latent_dist
        decoded = vae.decode(posterior.sample(generator=generator)).sample
        loss = F.mse_loss(decoded, pictures) + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.perf_counter() - started:.0f} s")
    vae.eval()
    with torch.no_grad():
        latents = vae.encode(colour_pictures(256, SIDE, generator)).latent_dist.mean
    vae.register_to_config(
        shift_factor=round(float(latents.mean()), 4),
        scaling_factor=round(float(1 / latents.std()), 4),
    )
    vae.save_pretrained(args.out)
    print(f"saved to {args.out}: {dict(vae.config)}")


if __name__ == "__main__":
    main()
