#!/usr/bin/env python3
"""autodidact's world model and training step in PyTorch (eager), for `autodidact bench pytorch`.

The Rust side writes a directory with
  meta.json            shapes and hyperparameters of the trainer configuration
  model.safetensors    the initial weights of autodidact's online model (burn's names)
  batches.safetensors  the sampled training batches and one camera frame for encoding
and starts this script. It builds the same network, loads the same weights, and answers JSON
commands on stdin with one JSON line each on stdout:
  {"cmd": "train", "steps": N}   -> {"step_s": [...], "losses": [{...}, ...]}
  {"cmd": "encode", "count": N}  -> {"encode_s": [...], "embedding": [...]}
  {"cmd": "quit"}
The first line it prints (before any command) describes the setup: torch version, threads,
parameter count, peak RSS. Timing happens here, around exactly the work being compared.

The training step mirrors autodidact-learn's `Trainer::train_on` term by term: EMA-target
encoding of [view_b, positive, future, view_a] (and the odometry pair's second frame) in one
batch, InfoNCE between views and with the temporal positive, the VICReg-style spread terms, the
H-step latent rollout from the online state and from the target state, the next-proprio head,
the reconstruction decoder, the relative-pose head of the odometry objective (when the
configuration has it), per-parameter gradient-norm clipping, the global gradient norm, Adam and
the EMA update. Every loss is read back to the host each step, as the Rust trainer does.
"""

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file
import torch.nn.functional as F
from torch import nn


# Frames per forward pass of the EMA target encoder (the result does not depend on it).
TARGET_SLICE = 64
# Values of a relative pose: [x, y, yaw].
RELATIVE_POSE_DIM = 3


class Mlp(nn.Module):
    def __init__(self, inputs, hidden, outputs):
        super().__init__()
        self.first = nn.Linear(inputs, hidden)
        self.second = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.second(F.relu(self.first(x)))


class ImageEncoder(nn.Module):
    def __init__(self, width, height, channels, feature_dim):
        super().__init__()
        convs = []
        previous = 3
        for out in channels:
            convs.append(nn.Conv2d(previous, out, 3, stride=2, padding=1))
            previous = out
        self.convs = nn.ModuleList(convs)
        factor = 2 ** len(channels)
        self.head = nn.Linear(previous * (width // factor) * (height // factor), feature_dim)

    def forward(self, images):
        x = images
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.head(torch.flatten(x, 1))


class StateEncoder(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.image = ImageEncoder(m["width"], m["height"], m["channels"], m["feature_dim"])
        self.proprio = Mlp(m["proprio_dim"], m["proprio_features"], m["proprio_features"])
        self.fuse_layer = nn.Linear(m["feature_dim"] + m["proprio_features"], m["embed_dim"])
        self.norm = nn.LayerNorm(m["embed_dim"], eps=1e-5)

    def image_features(self, images):
        return F.relu(self.image(images))

    def fuse(self, image_features, proprio):
        fused = torch.cat([image_features, F.relu(self.proprio(proprio))], dim=1)
        return self.norm(self.fuse_layer(fused))

    def forward(self, images, proprio):
        return self.fuse(self.image_features(images), proprio)


class Dynamics(nn.Module):
    def __init__(self, embed_dim, action_dim, hidden):
        super().__init__()
        self.residual = Mlp(embed_dim + action_dim, hidden, embed_dim)

    def rollout(self, state, actions):
        current = state
        predicted = []
        for step in range(actions.shape[1]):
            current = current + self.residual(torch.cat([current, actions[:, step]], dim=1))
            predicted.append(current)
        return torch.stack(predicted, dim=1)


class Decoder(nn.Module):
    def __init__(self, m):
        super().__init__()
        factor = 2 ** len(m["channels"])
        self.grid = (m["height"] // factor, m["width"] // factor)
        base = m["decoder_base_channels"]
        self.base = base
        self.project = nn.Linear(m["embed_dim"], base * self.grid[0] * self.grid[1])
        ups = []
        channels = base
        for layer in range(len(m["channels"])):
            last = layer + 1 == len(m["channels"])
            out = 3 if last else max(channels // 2, 16)
            ups.append(nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1))
            channels = out
        self.ups = nn.ModuleList(ups)

    def forward(self, state):
        x = F.relu(self.project(state)).reshape(state.shape[0], self.base, *self.grid)
        for index, up in enumerate(self.ups):
            x = up(x)
            if index + 1 != len(self.ups):
                x = F.relu(x)
        return torch.sigmoid(x) - 0.5


class WorldModel(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.encoder = StateEncoder(m)
        self.projector = Mlp(m["embed_dim"], m["head_hidden"], m["projection_dim"])
        self.dynamics = Dynamics(m["embed_dim"], m["action_dim"], m["dynamics_hidden"])
        self.proprio_head = nn.Linear(m["embed_dim"], m["proprio_dim"])
        self.decoder = Decoder(m)
        # [image-only state at t, target's at t + δ] -> [x, y, yaw] of t + δ seen from t.
        self.relative_pose = (
            Mlp(2 * m["embed_dim"], m["head_hidden"], RELATIVE_POSE_DIM) if m["odometry_head"] else None
        )


def burn_name(torch_name):
    """The burn module path of a PyTorch parameter name."""
    name = torch_name.replace("fuse_layer.", "fuse.")
    if ".norm." in name:
        name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
    if (".convs." in name or ".ups." in name) and name.endswith(".weight"):
        name = name[: -len("weight")] + "kernel"
    return name


def torch_layout(torch_name, value, shape):
    """A burn tensor in the layout of the PyTorch parameter of `shape`.

    burn's Linear weights are `[in, out]`. autodidact keeps convolution kernels as GEMM
    matrices: a 3x3 conv as `[(ky, kx, C_in), C_out]`, a 4x4 transposed conv as
    `[C_in, (ky, kx, C_out)]`."""
    if ".convs." in torch_name and torch_name.endswith(".weight"):
        out_channels, in_channels, kh, kw = shape
        return value.reshape(kh, kw, in_channels, out_channels).permute(3, 2, 0, 1)
    if ".ups." in torch_name and torch_name.endswith(".weight"):
        in_channels, out_channels, kh, kw = shape
        return value.reshape(in_channels, kh, kw, out_channels).permute(0, 3, 1, 2)
    if value.dim() == 2:
        return value.t()
    return value


def load_burn_weights(model, weights):
    """Copies burn's tensors into `model`, each rearranged into PyTorch's layout."""
    expected = set(weights)
    with torch.no_grad():
        for name, param in model.named_parameters():
            source = burn_name(name)
            if source not in weights:
                raise KeyError(f"{name}: no tensor {source} in the exported model")
            value = torch_layout(name, torch.from_numpy(weights[source]), tuple(param.shape))
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"{name}: shape {tuple(value.shape)} != {tuple(param.shape)}")
            param.copy_(value)
            expected.discard(source)
    if expected:
        raise KeyError(f"exported tensors with no PyTorch parameter: {sorted(expected)}")


def l2_normalize(x):
    return x / x.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-6)


def info_nce(query, key, temperature):
    logits = query @ key.t() / temperature
    return F.cross_entropy(logits, torch.arange(query.shape[0]))


def inverse_poses(poses):
    """Where the first frame lies seen from the second, for each [x, y, yaw] of the second seen
    from the first (the position may be scaled: the inverse is linear in it)."""
    poses = poses.double()
    x, y, yaw = poses[:, 0], poses[:, 1], poses[:, 2]
    sin, cos = torch.sin(yaw), torch.cos(yaw)
    turned = torch.remainder(-yaw + torch.pi, 2 * torch.pi) - torch.pi
    return torch.stack([-(cos * x + sin * y), -(-sin * x + cos * y), turned], dim=1).float()


def spread_terms(embeddings, target_std):
    batch, dim = embeddings.shape
    denominator = max(batch, 2) - 1
    centred = embeddings - embeddings.mean(dim=0, keepdim=True)
    variance = centred.square().sum(dim=0) / denominator
    std = (variance + 1e-4).sqrt()
    hinge = F.relu(target_std - std).mean()
    covariance = centred.t() @ centred / denominator
    off_diagonal = (covariance.square().sum() - variance.square().sum()) / dim
    return hinge, off_diagonal


class Trainer:
    def __init__(self, meta, weights):
        self.meta = meta
        self.model = WorldModel(meta["model"])
        load_burn_weights(self.model, weights)
        self.target_encoder = StateEncoder(meta["model"])
        self.target_projector = Mlp(
            meta["model"]["embed_dim"], meta["model"]["head_hidden"], meta["model"]["projection_dim"]
        )
        self.target_encoder.load_state_dict(self.model.encoder.state_dict())
        self.target_projector.load_state_dict(self.model.projector.state_dict())
        for param in list(self.target_encoder.parameters()) + list(self.target_projector.parameters()):
            param.requires_grad_(False)
        self.online_ema = list(self.model.encoder.parameters()) + list(self.model.projector.parameters())
        self.target_ema = list(self.target_encoder.parameters()) + list(self.target_projector.parameters())
        self.params = list(self.model.parameters())
        t = meta["trainer"]
        self.optimizer = torch.optim.Adam(self.params, lr=t["learning_rate"], betas=(0.9, 0.999), eps=1e-8)

    def step(self, batch):
        """One training step on a batch of numpy arrays; returns the named losses."""
        m, o = self.meta["model"], self.meta["objectives"]
        b, horizon, p = batch["view_a"].shape[0], o["horizon"], m["proprio_dim"]
        view_a = torch.from_numpy(batch["view_a"])
        proprio_all = torch.from_numpy(batch["proprio"])
        actions = torch.from_numpy(batch["actions"])
        proprio_now = proprio_all[:, 0]
        no_proprio = torch.zeros_like(proprio_now)
        future_proprio = proprio_all[:, 1:].reshape(b * horizon, p)
        losses = {}

        odometry = o["odometry"]
        with torch.no_grad():
            target_images = [
                torch.from_numpy(batch["view_b"]),
                torch.from_numpy(batch["positive"]),
                torch.from_numpy(batch["future"]).reshape(b * horizon, 3, m["height"], m["width"]),
                view_a,
            ]
            if odometry is not None:
                target_images.append(torch.from_numpy(batch["odometry_frames"]))
            targets = torch.cat(target_images)
            # In slices of 64 frames, as a careful PyTorch user would: one pass over all
            # 11 x 64 frames makes every feature map tens of MB and is 2-3x slower on a CPU.
            features = torch.cat([self.target_encoder.image_features(part) for part in targets.split(TARGET_SLICE)])
            target_view_b = self.target_encoder.fuse(features[:b], no_proprio)
            target_temporal = self.target_encoder.fuse(features[b : 2 * b], no_proprio)
            target_future = self.target_encoder.fuse(features[2 * b : 2 * b + horizon * b], future_proprio)
            now_end = 3 * b + horizon * b
            target_now = self.target_encoder.fuse(features[2 * b + horizon * b : now_end], proprio_now)
            if odometry is not None:
                target_second = self.target_encoder.fuse(features[now_end:], no_proprio)
            key = l2_normalize(self.target_projector(target_view_b))
            key_temporal = l2_normalize(self.target_projector(target_temporal))
            target_future = l2_normalize(target_future)

        online_features = self.model.encoder.image_features(view_a)
        state = self.model.encoder.fuse(online_features, proprio_now)
        image_only = self.model.encoder.fuse(online_features, no_proprio)
        query = l2_normalize(self.model.projector(image_only))
        total = 0.0

        def add(name, term, weight):
            nonlocal total
            losses[name] = term
            total = total + term * weight

        add("contrastive", info_nce(query, key, o["temperature"]), o["contrastive_weight"])
        add(
            "temporal",
            info_nce(query, key_temporal, o["temperature"]),
            o["contrastive_weight"] * o["temporal_weight"],
        )
        variance, covariance = spread_terms(state, o["target_std"])
        add("variance", variance, o["variance_weight"])
        add("covariance", covariance, o["covariance_weight"])
        predicted = self.model.dynamics.rollout(state, actions).reshape(b * horizon, m["embed_dim"])
        forward = (l2_normalize(predicted) - target_future).square().sum(dim=1).mean()
        from_target = self.model.dynamics.rollout(target_now, actions).reshape(b * horizon, m["embed_dim"])
        from_target = (l2_normalize(from_target) - target_future).square().sum(dim=1).mean()
        weight = o["target_start_weight"]
        add("forward", (forward + from_target * weight) / (1.0 + weight), o["forward_weight"])
        next_proprio = proprio_all[:, 1:].reshape(b * horizon, p)
        add("proprio", (self.model.proprio_head(predicted) - next_proprio).square().mean(), o["proprio_weight"])
        reconstruction = (self.model.decoder(state) - view_a).square().mean()
        add("reconstruction", reconstruction, o["reconstruction_weight"])
        if odometry is not None:
            add("odometry", self.odometry_term(batch, image_only, target_second), odometry["weight"])
        values = {name: term.item() for name, term in losses.items()}
        values["total"] = total.item()

        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grads = [param.grad for param in self.params]
        with torch.no_grad():
            # burn clips each parameter's gradient by its own norm.
            norms = torch._foreach_norm(grads)
            clip = self.meta["trainer"]["grad_clip_norm"]
            if clip is not None:
                coefficients = [(clip / (norm + 1e-38)).clamp(max=1.0) for norm in norms]
                torch._foreach_mul_(grads, coefficients)
            values["grad_norm"] = torch.stack(norms).square().sum().sqrt().item()
        if not (np.isfinite(values["total"]) and np.isfinite(values["grad_norm"])):
            return values
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.target_ema, self.online_ema, 1.0 - self.meta["trainer"]["ema_momentum"])
        return values

    def odometry_term(self, batch, image_only, target_second):
        """Where frame t + δ lies seen from t and t seen from t + δ, against wheel odometry,
        over the sequences whose odometry gave the pose (a zero term when none did)."""
        known = torch.from_numpy(batch["relative_pose_known"]).unsqueeze(1)
        count = known.sum()
        if count.item() < 1.0:
            return torch.zeros(())
        truth = torch.from_numpy(batch["relative_poses"])
        inputs = torch.cat(
            [torch.cat([image_only, target_second], dim=1), torch.cat([target_second, image_only], dim=1)]
        )
        residual = self.model.relative_pose(inputs) - torch.cat([truth, inverse_poses(truth)])
        position = residual[:, :2].square()
        # 2 (1 - cos Δ): Δ² for small errors, no jump where a turn wraps past ±π.
        turn = (1.0 - residual[:, 2:3].cos()) * 2.0
        error = torch.cat([position, turn], dim=1) * torch.cat([known, known])
        return error.sum() / (2.0 * count * RELATIVE_POSE_DIM)

    def embed(self, image, proprio):
        """One camera frame (rgb8, HWC bytes) to its state embedding, as the encoder node does."""
        pixels = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0).sub_(0.5).unsqueeze(0)
        return self.target_encoder(pixels, torch.from_numpy(proprio).unsqueeze(0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory written by autodidact bench pytorch")
    parser.add_argument("--threads", type=int, required=True, help="intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    with open(f"{args.data}/meta.json") as handle:
        meta = json.load(handle)
    trainer = Trainer(meta, load_file(f"{args.data}/model.safetensors"))
    # Copies own aligned memory: arrays viewing the file's buffer can be misaligned, which sends
    # oneDNN down slow paths and would time PyTorch unfairly.
    arrays = {name: array.copy() for name, array in load_file(f"{args.data}/batches.safetensors").items()}
    names = ["view_a", "view_b", "positive", "future", "proprio", "actions"]
    if meta["objectives"]["odometry"] is not None:
        names += ["odometry_frames", "relative_poses", "relative_pose_known"]
    batches = [
        {name: arrays[f"{index}.{name}"] for name in names} for index in range(meta["batches"])
    ]
    image = arrays["encode.image"].astype(np.uint8)
    proprio = arrays["encode.proprio"]
    next_batch = 0

    def reply(value):
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    reply(
        {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "params": sum(param.numel() for param in trainer.model.parameters()),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
    )
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "train":
            step_s, losses = [], []
            for _ in range(command["steps"]):
                batch = batches[next_batch % len(batches)]
                next_batch += 1
                started = time.perf_counter()
                losses.append(trainer.step(batch))
                step_s.append(time.perf_counter() - started)
            reply({"step_s": step_s, "losses": losses})
        elif command["cmd"] == "encode":
            encode_s = []
            with torch.inference_mode():
                for _ in range(command["count"]):
                    started = time.perf_counter()
                    embedding = trainer.embed(image, proprio)[0].tolist()
                    encode_s.append(time.perf_counter() - started)
            reply({"encode_s": encode_s, "embedding": embedding})
        elif command["cmd"] == "quit":
            reply({"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
            return
        else:
            reply({"error": f"unknown command {command['cmd']!r}"})


if __name__ == "__main__":
    main()
