"""SAM v1 two-way transformer: prompt tokens and image tokens attend to each other.

`image_embedding: [B, h, w, C]`, `image_pe: [B or 1, h, w, C]`, `point_embedding: [B, N, C]` ->
`queries: [B, N, C]`, `keys: [B, h*w, C]` (row-major). Each layer: token self-attention,
token->image cross-attention, MLP, image->token cross-attention; then a final token->image
attention. The positional input of the tokens is their initial embedding. LayerNorm eps 1e-5.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from icmh_jax.sam.image_encoder import layer_norm

LN_EPS = 1e-5  # torch's nn.LayerNorm default, used by the reference decoder


class Attention(nn.Module):
  """Attention with q/k/v projections to embedding_dim / downsample_rate, split into heads."""
  embedding_dim: int
  num_heads: int
  downsample_rate: int = 1

  @nn.compact
  def __call__(self, q, k, v):
    """q [B, Nq, C], k and v [B, Nk, C] -> [B, Nq, C]."""
    internal = self.embedding_dim // self.downsample_rate
    if internal % self.num_heads:
      raise ValueError(f"num_heads {self.num_heads} must divide {internal}")
    q = nn.Dense(internal, name="q_proj")(q)
    k = nn.Dense(internal, name="k_proj")(k)
    v = nn.Dense(internal, name="v_proj")(v)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], self.num_heads, -1)
    q, k, v = split(q), split(k), split(v)
    attn = jnp.einsum("bqhc,bkhc->bhqk", q, k) / jnp.sqrt(jnp.float32(q.shape[-1]))
    attn = jax.nn.softmax(attn, axis=-1)
    out = jnp.einsum("bhqk,bkhc->bqhc", attn, v)
    out = out.reshape(out.shape[0], out.shape[1], internal)
    return nn.Dense(self.embedding_dim, name="out_proj")(out)


class TwoWayAttentionBlock(nn.Module):
  """One two-way layer; the first one's self-attention has no PE and no residual."""
  embedding_dim: int
  num_heads: int
  mlp_dim: int = 2048
  attention_downsample_rate: int = 2
  skip_first_layer_pe: bool = False

  @nn.compact
  def __call__(self, queries, keys, query_pe, key_pe):
    """queries [B, N, C], keys [B, hw, C] and their PEs -> updated (queries, keys)."""
    d, h, r = self.embedding_dim, self.num_heads, self.attention_downsample_rate
    if self.skip_first_layer_pe:
      queries = Attention(d, h, name="self_attn")(queries, queries, queries)
    else:
      q = queries + query_pe
      queries = queries + Attention(d, h, name="self_attn")(q, q, queries)
    queries = layer_norm("norm1", LN_EPS)(queries)

    q, k = queries + query_pe, keys + key_pe
    queries = queries + Attention(d, h, r, name="cross_attn_token_to_image")(q, k, keys)
    queries = layer_norm("norm2", LN_EPS)(queries)

    y = nn.relu(nn.Dense(self.mlp_dim, name="lin1")(queries))
    queries = queries + nn.Dense(d, name="lin2")(y)
    queries = layer_norm("norm3", LN_EPS)(queries)

    q, k = queries + query_pe, keys + key_pe
    keys = keys + Attention(d, h, r, name="cross_attn_image_to_token")(k, q, queries)
    keys = layer_norm("norm4", LN_EPS)(keys)
    return queries, keys


class TwoWayTransformer(nn.Module):
  """The mask decoder's transformer (depth 2, 256 wide, 8 heads, MLP 2048 in SAM v1)."""
  depth: int = 2
  embedding_dim: int = 256
  num_heads: int = 8
  mlp_dim: int = 2048
  attention_downsample_rate: int = 2

  @nn.compact
  def __call__(self, image_embedding, image_pe, point_embedding):
    """See the module docstring for shapes."""
    b, h, w, c = image_embedding.shape
    keys = image_embedding.reshape(b, h * w, c)
    key_pe = jnp.broadcast_to(image_pe, (b, h, w, c)).reshape(b, h * w, c)
    queries = point_embedding
    for i in range(self.depth):
      queries, keys = TwoWayAttentionBlock(
          self.embedding_dim, self.num_heads, self.mlp_dim, self.attention_downsample_rate,
          skip_first_layer_pe=(i == 0), name=f"layers_{i}")(queries, keys, point_embedding, key_pe)
    q, k = queries + point_embedding, keys + key_pe
    queries = queries + Attention(self.embedding_dim, self.num_heads,
                                  self.attention_downsample_rate,
                                  name="final_attn_token_to_image")(q, k, keys)
    return layer_norm("norm_final_attn", LN_EPS)(queries), keys
