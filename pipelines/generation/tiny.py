"""The `tiny` preset: the real SDXL ControlNet pipeline class built from tiny, randomly initialised models.

It downloads nothing and is seeded, so tests, CI and an offline demo get the exact same code path as the real
models in seconds on a CPU. Its images are noise; the UI labels them as stand-ins.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    ControlNetModel,
    EulerAncestralDiscreteScheduler,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from tokenizers import pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

TINY_SEED = 0
TEXT_WIDTH = 16  # hidden size of each text encoder; the UNet attends to both, concatenated
TIME_EMBED_DIM = 4  # SDXL feeds six size/crop numbers, each embedded in this many channels

# The scheduler config SDXL base ships with (scheduler/scheduler_config.json, less its _class_name and
# _diffusers_version), so `from_config` builds the same schedulers for both presets: clip_sample off matters
# to DDIM and DDPM, whose defaults clip. tests/test_deploy.py compares it with the published file.
SDXL_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def build_tiny_pipeline() -> StableDiffusionXLControlNetPipeline:
    """Build the stand-in pipeline in float32 on the CPU; the same call always gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        unet = UNet2DConditionModel(
            sample_size=16,
            block_out_channels=(4, 8, 16),
            layers_per_block=1,
            norm_num_groups=4,
            # Attention only at the lowest resolution (1/32 of the image): it keeps a 1024² run cheap.
            down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 2, 4),
            cross_attention_dim=2 * TEXT_WIDTH,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=TEXT_WIDTH + 6 * TIME_EMBED_DIM,
        )
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(2, 2, 4, 4))
        _wake_zero_convolutions(controlnet)
        vae = AutoencoderKL(
            block_out_channels=(4, 4, 4, 4),
            layers_per_block=1,
            norm_num_groups=2,
            latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            mid_block_add_attention=False,
            scaling_factor=0.13025,
            force_upcast=False,
        )
        text_config = CLIPTextConfig(
            vocab_size=len(_tiny_vocab()),
            hidden_size=TEXT_WIDTH,
            intermediate_size=2 * TEXT_WIDTH,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=TEXT_WIDTH,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_act="gelu",
        )
        text_encoder = CLIPTextModel(text_config)
        text_encoder_2 = CLIPTextModelWithProjection(text_config)
    tokenizer = tiny_tokenizer()
    return StableDiffusionXLControlNetPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet.eval(),
        controlnet=controlnet.eval(),
        scheduler=EulerAncestralDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        add_watermarker=False,
    )


def _wake_zero_convolutions(controlnet: ControlNetModel) -> None:
    """A fresh ControlNet's output convolutions are zero, so the pose would change nothing; give them small
    random weights so the stand-in's output depends on the conditioning like the real one's does."""
    for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
        torch.nn.init.normal_(conv.weight, std=0.05)


def _tiny_vocab() -> dict[str, int]:
    """Special tokens, then every byte as a word piece and as a word end: any text encodes, without merges."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>", *alphabet, *(symbol + "</w>" for symbol in alphabet)]
    return {token: index for index, token in enumerate(tokens)}


def tiny_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer(vocab=_tiny_vocab(), merges=[], model_max_length=77)


# Stand-ins of the optional models (the live-preview decoder and the draft LoRA), written to a folder and
# loaded back through the real loaders, so the tiny preset runs the previews and Draft mode offline too.
LORA_RANK = 4
FUSED_PROJECTIONS = ("to_qkv", "to_kv")  # added by the fuse_qkv lever; a LoRA targets the separate ones


def save_tiny_taesd(folder: Path) -> None:
    """A random `AutoencoderTiny` (TAESD's architecture, 8 channels instead of 64) in diffusers' format."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        decoder = AutoencoderTiny(
            encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
        )
    decoder.save_pretrained(folder)


def save_random_lora(
    unet: UNet2DConditionModel, folder: Path, weight_name: str, rank: int = LORA_RANK, std: float = 0.1
) -> int:
    """A random LoRA on every linear layer of `unet` (which may live on the meta device: only shapes are
    read), saved by diffusers' own LoRA saver in its peft format. Returns the number of layers."""
    generator = torch.Generator().manual_seed(TINY_SEED)
    layers = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in FUSED_PROJECTIONS:
            shapes = {"lora_A": (rank, module.in_features), "lora_B": (module.out_features, rank)}
            for part, shape in shapes.items():
                layers[f"{name}.{part}.weight"] = std * torch.randn(shape, generator=generator)
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=layers, weight_name=weight_name)
    return len(layers) // 2


def save_tiny_lora(folder: Path, weight_name: str) -> None:
    """The tiny preset's draft LoRA: random, for the tiny UNet."""
    save_random_lora(build_tiny_pipeline().unet, folder, weight_name)
