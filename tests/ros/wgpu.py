"""autodidact_node with backend:=wgpu (Mesa's lavapipe here, a GPU where there is one), on what
sim_node publishes: its status says where training and inference run and why, versions trained
on wgpu reach the embeddings, and it stops cleanly on SIGINT."""

import os

from autodidact_msgs.msg import Embedding, TrainerStatus

from harness import WORK, NodeProcess, Peer, log, run


def main(nodes):
    # A small camera and batch: a software GPU trains slowly.
    config = os.path.join(WORK, "small.toml")
    with open(config, "w") as f:
        f.write("[sim.camera]\nwidth = 32\nheight = 32\n\n[trainer]\nbatch_size = 8\n")
    peer = Peer()
    embeddings = peer.record(Embedding, "autodidact/embedding")
    statuses = peer.record(TrainerStatus, "autodidact/trainer/status")

    sim = NodeProcess("sim_node", "sim", params={"seed": 5, "realtime_factor": 1.0, "config_file": config})
    nodes.append(sim)
    learner = NodeProcess(
        "autodidact_node",
        "autodidact",
        params={
            "use_sim_time": True,
            "config_file": config,
            "image_width": 32,
            "image_height": 32,
            "min_replay": 32,
            "publish_every": 1,
            "health_every": 0,
            "trainer_threads": 1,
            "backend": "wgpu",
        },
    )
    nodes.append(learner)

    peer.wait_for("a trainer status", lambda: len(statuses) > 0, 120, nodes)
    first = statuses[-1]
    log(f"training on {first.training_backend} ({first.training_backend_reason})")
    log(f"inference on {first.inference_backend} ({first.inference_backend_reason})")
    assert first.training_backend == "wgpu", first.training_backend
    assert first.training_backend_reason.startswith("asked for"), first.training_backend_reason
    # inference_backend stays auto: the CPU without a hardware GPU, the faster one with one.
    assert first.inference_backend in ("flex", "wgpu"), first.inference_backend
    assert first.inference_backend_reason.startswith("auto"), first.inference_backend_reason

    peer.wait_for("two training steps on wgpu", lambda: statuses[-1].train_step >= 2, 600, nodes)
    peer.wait_for(
        "an embedding with weights trained on wgpu",
        lambda: any(m.model_version >= 2 for m in embeddings),
        120,
        nodes,
    )
    newest = statuses[-1]
    losses = dict(zip(newest.loss_names, newest.loss_values))
    assert all(v == v for v in losses.values()), losses
    log(f"step {newest.train_step}, version {newest.model_version}, {len(embeddings)} embeddings")
    code = learner.stop()
    nodes.remove(learner)
    assert code == 0, learner.tail()
    peer.close()


if __name__ == "__main__":
    run(main)
