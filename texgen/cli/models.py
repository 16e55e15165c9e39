"""``texgen models``: make tiny test models, and show what a model spec loads as."""

from __future__ import annotations

import argparse

from .options import add_load_options, load_options_from_args

ARCH_HELP = "sd15-controlnet, sdxl-controlnet or sd2-depth"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="make tiny test models; inspect a model spec")
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    tiny = sub.add_parser("make-tiny", help="write a tiny random-weight diffusers model folder (a few MB)")
    tiny.add_argument("dir", help="folder to write (created)")
    tiny.add_argument("--arch", default="sd15-controlnet", help=f"architecture: {ARCH_HELP}")
    tiny.add_argument("--inpaint", action="store_true", help="give the UNet 9 input channels (inpainting model)")
    tiny.add_argument("--seed", type=int, default=0, help="weight seed")
    tiny.add_argument("--lora", metavar="FILE.safetensors", help="also write a random LoRA of the architecture here")
    tiny.set_defaults(func=make_tiny)

    info = sub.add_parser("info", help="load a model spec and print its architecture, components and device")
    info.add_argument("spec", help="preset, hub id, folder, checkpoint, model card (.toml) or random:ARCH")
    info.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cuda, cuda:1, mps or cpu")
    add_load_options(info, in_config=False)
    info.set_defaults(func=show_info)


def make_tiny(args: argparse.Namespace) -> int:
    from ..diffusion.tiny import ARCH_NAMES
    from ..diffusion.tiny import make_tiny as write_tiny
    from ..errors import ConfigError

    if args.arch not in ARCH_NAMES:
        raise ConfigError(f"--arch: expected {ARCH_HELP}, got {args.arch!r}")
    if args.inpaint and args.arch == "sd2-depth":
        raise ConfigError("--inpaint: sd2-depth has no inpainting UNet (it inpaints by latent blending)")
    if args.lora and not args.lora.endswith(".safetensors"):
        raise ConfigError(f"--lora: expected a .safetensors file name, got {args.lora!r}")
    path = write_tiny(args.dir, args.arch, inpaint=args.inpaint, seed=args.seed)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"wrote a tiny {args.arch}{' inpainting' if args.inpaint else ''} model to {path} ({size / 1e6:.1f} MB)")
    if args.lora:
        from ..diffusion.tiny import make_tiny_lora

        lora = make_tiny_lora(args.lora, args.arch, seed=args.seed)
        print(f"wrote a random LoRA of it to {lora} ({lora.stat().st_size / 1e3:.0f} kB)")
    return 0


def show_info(args: argparse.Namespace) -> int:
    import torch

    from ..diffusion.loading import build_generator

    generator = build_generator(args.spec, device=args.device, options=load_options_from_args(args))
    print(f"spec:         {args.spec}")
    print(f"architecture: {generator.arch}")
    print(f"device:       {generator.device} ({str(generator.dtype).removeprefix('torch.')})")
    for lora in generator.loras:  # as the report names them
        weight_name = f" ({lora['weight_name']})" if lora["weight_name"] else ""
        print(f"LoRA fused:   {lora['path']}{weight_name}, scale {lora['scale']:g}")
    print("components:")
    for name, component in sorted(generator.components.items()):
        line = f"  {name:15s} {type(component).__name__}"
        if isinstance(component, torch.nn.Module):
            params = sum(p.numel() for p in component.parameters())
            line += f", {params / 1e6:.1f}M parameters"
            channels = getattr(getattr(component, "config", None), "in_channels", None)
            if name.endswith("unet") and channels is not None:
                line += f", {channels} input channels"
        print(line)
    return 0
