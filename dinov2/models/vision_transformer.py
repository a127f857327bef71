"""DINOv2 Vision Transformer with the official constructor signature and state_dict keys.

Keys: ``cls_token``, ``pos_embed``, ``register_tokens`` (if any), ``mask_token``,
``patch_embed.proj.*``, ``blocks.N.*`` (or ``blocks.{N // chunk}.N.*`` when ``block_chunks > 0``),
``norm.*``.
"""

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinov2.layers import MemEffAttention, Mlp, PatchEmbed, SwiGLUFFNFused
from dinov2.layers import NestedTensorBlock as Block


class BlockChunk(nn.ModuleList):
    """A group of consecutive blocks; leading ``nn.Identity`` padding keeps global block indices
    in the keys (``blocks.1.3.*`` is block 3), exactly as the official FSDP-wrapping layout."""

    def forward(self, x: Tensor | list[Tensor]) -> Tensor | list[Tensor]:
        for b in self:
            x = b(x)
        return x


def _make_ffn(ffn_layer: str | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if callable(ffn_layer):
        return ffn_layer
    if ffn_layer == "mlp":
        return Mlp
    if ffn_layer in ("swiglufused", "swiglu"):  # official: both names build the fused variant
        return SwiGLUFFNFused
    if ffn_layer == "identity":
        return lambda *args, **kwargs: nn.Identity()
    raise ValueError(
        f"unknown ffn_layer {ffn_layer!r}; use 'mlp', 'swiglufused', 'swiglu' or 'identity'"
    )


def init_weights_vit_timm(module: nn.Module, name: str = "") -> None:
    """Official (timm) initialisation of linear layers: trunc-normal std 0.02, zero bias."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DinoVisionTransformer(nn.Module):
    """ViT backbone. Images ``(B, 3, H, W)`` with ``H, W`` multiples of ``patch_size``."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        ffn_bias: bool = True,
        proj_bias: bool = True,
        drop_path_rate: float = 0.0,
        drop_path_uniform: bool = False,
        init_values: float | None = None,
        embed_layer: Callable[..., nn.Module] = PatchEmbed,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        block_fn: Callable[..., nn.Module] = Block,
        ffn_layer: str | Callable[..., nn.Module] = "mlp",
        block_chunks: int = 1,
        num_register_tokens: int = 0,
        interpolate_antialias: bool = False,
        interpolate_offset: float = 0.1,
    ) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.num_features = self.embed_dim = embed_dim
        self.num_tokens = 1
        self.n_blocks = depth
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset

        self.patch_embed = embed_layer(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim
        )
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_tokens, embed_dim))
        if num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {num_register_tokens}")
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
            if num_register_tokens
            else None
        )

        if drop_path_uniform:
            dpr = [drop_path_rate] * depth
        else:  # linear decay rule: 0 for the first block, drop_path_rate for the last
            dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device="cpu")]
        ffn = _make_ffn(ffn_layer)
        blocks_list = [
            block_fn(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                drop_path=dpr[i],
                norm_layer=norm_layer,
                act_layer=act_layer,
                ffn_layer=ffn,
                init_values=init_values,
            )
            for i in range(depth)
        ]
        self.chunked_blocks = block_chunks > 0
        if self.chunked_blocks:
            chunksize = depth // block_chunks
            chunks = [
                [nn.Identity()] * i + blocks_list[i : i + chunksize]
                for i in range(0, depth, chunksize)
            ]
            self.blocks = nn.ModuleList([BlockChunk(c) for c in chunks])
        else:
            self.blocks = nn.ModuleList(blocks_list)

        self.norm = norm_layer(embed_dim)
        self.head = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: pos_embed trunc-normal 0.02, cls/register tokens normal 1e-6, linears
        0.02."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for name, module in self.named_modules():
            init_weights_vit_timm(module, name)

    def interpolate_pos_encoding(self, x: Tensor, w: int, h: int) -> Tensor:
        """Positional embedding for ``x`` ``(B, 1 + N, D)`` from an image of size ``(w, h)``.

        ``w``/``h`` follow the official naming (``B, C, w, h = x.shape``), i.e. ``w`` is the height.
        Returns ``(1, 1 + N, D)`` in ``x``'s dtype; bicubic resize of the patch grid.
        """
        previous_dtype = x.dtype
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        class_pos_embed, patch_pos_embed = pos_embed[:, :1], pos_embed[:, 1:]
        dim = x.shape[-1]
        w0, h0 = w // self.patch_size, h // self.patch_size
        M = int(math.sqrt(N))
        if M * M != N:
            raise ValueError(f"pos_embed has {N} patch positions, not a square grid")
        if self.interpolate_offset:
            # Official backward-compatible kludge (DINO issue 8): a scale factor slightly above the
            # exact ratio so floor() in the output size does not drop a row.
            kwargs = {
                "scale_factor": (
                    (w0 + self.interpolate_offset) / M,
                    (h0 + self.interpolate_offset) / M,
                )
            }
        else:
            kwargs = {"size": (w0, h0)}
        patch_pos_embed = F.interpolate(
            patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2),
            mode="bicubic",
            antialias=self.interpolate_antialias,
            **kwargs,
        )
        if tuple(patch_pos_embed.shape[-2:]) != (w0, h0):
            raise RuntimeError(
                f"interpolated grid {tuple(patch_pos_embed.shape[-2:])} != {(w0, h0)}"
            )
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((class_pos_embed, patch_pos_embed), dim=1).to(previous_dtype)

    def prepare_tokens_with_masks(self, x: Tensor, masks: Tensor | None = None) -> Tensor:
        """``(B, C, H, W)`` (+ bool masks ``(B, N)``) -> tokens ``(B, 1 + R + N, D)``.

        iBOT: masked patch embeddings are replaced by ``mask_token`` *before* the positional
        embedding is added, so the student still knows where the masked patches are.
        """
        _, _, w, h = x.shape
        x = self.patch_embed(x)
        if masks is not None:
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        if self.register_tokens is not None:
            # Registers are inserted after the positional embedding: they have no position.
            x = torch.cat(
                (x[:, :1], self.register_tokens.expand(x.shape[0], -1, -1), x[:, 1:]), dim=1
            )
        return x

    def _split_norm(self, x: Tensor, masks: Tensor | None) -> dict[str, Tensor | None]:
        x_norm = self.norm(x)
        r = self.num_register_tokens
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1 : r + 1],
            "x_norm_patchtokens": x_norm[:, r + 1 :],
            "x_prenorm": x,
            "masks": masks,
        }

    def forward_features_list(
        self, x_list: list[Tensor], masks_list: list[Tensor | None]
    ) -> list[dict[str, Tensor | None]]:
        """Multi-crop: one dict per crop group (groups may have different resolutions)."""
        x = [self.prepare_tokens_with_masks(x, masks) for x, masks in zip(x_list, masks_list)]
        for blk in self.blocks:
            x = blk(x)
        return [self._split_norm(t, masks) for t, masks in zip(x, masks_list)]

    def forward_features(
        self, x: Tensor | list[Tensor], masks: Tensor | list[Tensor | None] | None = None
    ) -> dict[str, Tensor | None] | list[dict[str, Tensor | None]]:
        """Returns ``x_norm_clstoken`` ``(B, D)``, ``x_norm_regtokens`` ``(B, R, D)``,
        ``x_norm_patchtokens`` ``(B, N, D)``, ``x_prenorm`` ``(B, 1 + R + N, D)``, ``masks``.
        A list input returns a list of such dicts."""
        if isinstance(x, list):
            return self.forward_features_list(x, masks if masks is not None else [None] * len(x))
        x_tok = self.prepare_tokens_with_masks(x, masks)
        for blk in self.blocks:
            x_tok = blk(x_tok)
        return self._split_norm(x_tok, masks)

    def _get_intermediate_layers(self, x: Tensor, n: int | Sequence[int] = 1) -> list[Tensor]:
        x = self.prepare_tokens_with_masks(x)
        blocks_to_take = set(range(self.n_blocks - n, self.n_blocks) if isinstance(n, int) else n)
        output = []
        for i, blk in enumerate(self._iter_blocks()):
            x = blk(x)
            if i in blocks_to_take:
                output.append(x)
        if len(output) != len(blocks_to_take):
            raise ValueError(
                f"block indices {sorted(blocks_to_take)} out of range for depth {self.n_blocks}"
            )
        return output

    def _iter_blocks(self) -> list[nn.Module]:
        """The real blocks in order; the chunked layout's Identity padding is skipped."""
        if not self.chunked_blocks:
            return list(self.blocks)
        return [b for chunk in self.blocks for b in chunk if not isinstance(b, nn.Identity)]

    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple:
        """Patch tokens of the last ``n`` blocks (or of the block indices in ``n``).

        Each output is ``(B, N, D)``, or ``(B, D, H/p, W/p)`` with ``reshape``; with
        ``return_class_token`` each item is a pair ``(patch_tokens, cls_token (B, D))``.
        """
        outputs = self._get_intermediate_layers(x, n)
        if norm:
            outputs = [self.norm(out) for out in outputs]
        class_tokens = [out[:, 0] for out in outputs]
        outputs = [out[:, 1 + self.num_register_tokens :] for out in outputs]
        if reshape:
            B, _, w, h = x.shape
            outputs = [
                out.reshape(B, w // self.patch_size, h // self.patch_size, -1)
                .permute(0, 3, 1, 2)
                .contiguous()
                for out in outputs
            ]
        if return_class_token:
            return tuple(zip(outputs, class_tokens))
        return tuple(outputs)

    def forward(self, *args, is_training: bool = False, **kwargs):
        """Training: the ``forward_features`` dict(s); otherwise ``head(x_norm_clstoken)``
        ``(B, D)``."""
        ret = self.forward_features(*args, **kwargs)
        if is_training:
            return ret
        return self.head(ret["x_norm_clstoken"])


def _vit(
    patch_size: int, num_register_tokens: int, embed_dim: int, depth: int, num_heads: int, **kwargs
):
    return DinoVisionTransformer(
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4,
        block_fn=partial(Block, attn_class=MemEffAttention),
        num_register_tokens=num_register_tokens,
        **kwargs,
    )


def vit_tiny(patch_size: int = 16, num_register_tokens: int = 0, **kwargs) -> DinoVisionTransformer:
    """Not an official DINOv2 preset: timm's ViT-Ti dims (192/12/3), for tests and laptops."""
    return _vit(patch_size, num_register_tokens, 192, 12, 3, **kwargs)


def vit_small(
    patch_size: int = 16, num_register_tokens: int = 0, **kwargs
) -> DinoVisionTransformer:
    """ViT-S: embed 384, depth 12, 6 heads."""
    return _vit(patch_size, num_register_tokens, 384, 12, 6, **kwargs)


def vit_base(patch_size: int = 16, num_register_tokens: int = 0, **kwargs) -> DinoVisionTransformer:
    """ViT-B: embed 768, depth 12, 12 heads."""
    return _vit(patch_size, num_register_tokens, 768, 12, 12, **kwargs)


def vit_large(
    patch_size: int = 16, num_register_tokens: int = 0, **kwargs
) -> DinoVisionTransformer:
    """ViT-L: embed 1024, depth 24, 16 heads."""
    return _vit(patch_size, num_register_tokens, 1024, 24, 16, **kwargs)


def vit_giant2(
    patch_size: int = 16, num_register_tokens: int = 0, **kwargs
) -> DinoVisionTransformer:
    """ViT-g/2: embed 1536, depth 40, 24 heads (64 per head). The official training configs and
    hub models pair it with ``ffn_layer="swiglufused"``; that is our default, overridable."""
    kwargs.setdefault("ffn_layer", "swiglufused")
    return _vit(patch_size, num_register_tokens, 1536, 40, 24, **kwargs)
