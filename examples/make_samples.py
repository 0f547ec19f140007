"""Draws the Edit tab's sample images (run once; the PNGs are committed beside this file)."""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def house() -> Image.Image:
    image = Image.new("RGB", (512, 384), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 290, 512, 384), fill=(90, 160, 70))
    draw.rectangle((170, 170, 340, 300), fill=(225, 205, 170))
    draw.polygon([(150, 175), (255, 95), (360, 175)], fill=(160, 60, 50))
    draw.rectangle((235, 230, 275, 300), fill=(110, 70, 40))
    draw.rectangle((190, 195, 225, 225), fill=(250, 250, 210))
    draw.ellipse((400, 30, 470, 100), fill=(250, 220, 80))
    return image


def still_life() -> Image.Image:
    image = Image.new("RGB", (384, 512), (240, 235, 225))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 384, 512), fill=(150, 110, 80))
    draw.ellipse((70, 220, 190, 340), fill=(200, 40, 40))
    draw.polygon([(230, 340), (250, 180), (300, 180), (320, 340)], fill=(60, 110, 170))
    draw.ellipse((150, 280, 250, 350), fill=(240, 200, 60))
    return image


if __name__ == "__main__":
    house().save(HERE / "house.png")
    still_life().save(HERE / "still_life.png")
