"""The ``leafrbm`` command line: the whole leaf story (``demo``) and tools for one's own images.

    leafrbm demo [--data PATH] [--out DIR] [--size N] [--seed N] [--quick]
    leafrbm train DATA --model model.npz [--layers 500 250 100] [--epochs 10] ...
    leafrbm map MODEL DATA [--out leaf_space.png] [--depth K]
    leafrbm inpaint MODEL DATA [--mask rectangle] [--fraction 0.25] [--out inpaint.png]
    leafrbm dream MODEL [--data DATA] [--n 16] [--steps 200] [--out dream.gif]

Errors (a missing folder, no images, a bad size) print one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "run_demo"]


class CLIError(Exception):
    """An error the user can fix; printed as one line."""


# ----------------------------------------------------------------------------- helpers
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _size(text):
    value = _positive_int(text)
    if not 8 <= value <= 256:
        raise argparse.ArgumentTypeError(f"--size must be between 8 and 256 pixels, got {value}")
    return value


def _load_images(path, size):
    from .datasets import load_leaf_images

    path = Path(path)
    if not path.exists():
        raise CLIError(f"no such file or folder: {path}")
    try:
        result = load_leaf_images(path, size=size, on_error="skip")
    except (ValueError, OSError) as error:
        raise CLIError(str(error)) from None
    images, labels = result if isinstance(result, tuple) else (result, None)
    if len(images) == 0:
        raise CLIError(f"no readable images in {path}")
    return images, labels


def _load_model(path):
    from .io import load

    try:
        return load(path)
    except FileNotFoundError:
        raise CLIError(f"no such model file: {path}") from None
    except ValueError as error:
        raise CLIError(str(error)) from None


def _image_shape(model):
    side = int(round(np.sqrt(model.n_features_in_)))
    if side * side != model.n_features_in_:
        raise CLIError(f"the model's {model.n_features_in_} inputs are not a square image")
    return side


class _Timer:
    """Collects named wall-clock timings for metrics.json and the report."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, name):
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)


def _say(quiet, message):
    if not quiet:
        print(message, flush=True)


# ----------------------------------------------------------------------------- demo
DEMO_SETTINGS = {
    # Default: the story as told, 100 species × 16 leaves, within about 3 minutes on 2 cores.
    "full": dict(n_species=100, n_per_species=16, layers=(500, 500, 250), epochs=30,
                 learning_rate=0.05, batch_size=20, tsne_iter=750, inpaint_steps=200, dream_steps=120,
                 n_test=160, n_occlusion_images=80),
    # --quick: the same story, smaller, in well under 30 seconds (used by the tests).
    "quick": dict(n_species=20, n_per_species=16, layers=(256, 256, 128), epochs=40,
                  learning_rate=0.05, batch_size=10, tsne_iter=300, inpaint_steps=30, dream_steps=24,
                  n_test=32, n_occlusion_images=32),
}


def run_demo(out="leafrbm-demo", data=None, size=None, seed=0, quick=False, quiet=False, n_jobs=None):
    """Run the whole leaf story and write every artifact into ``out``. Returns the metrics dict."""
    from . import viz
    from .datasets import make_leaves, to_unit
    from .dbn import DBN
    from .dream import dream
    from .leafspace import LeafSpace
    from .occlusion import inpaint, make_masks, occlusion_experiment
    from .tsne import TSNE

    settings = DEMO_SETTINGS["quick" if quick else "full"]
    size = size or (32 if quick else 64)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    started = time.perf_counter()
    rng = np.random.default_rng(seed)

    with timer("data"):
        if data is None:
            images, species = make_leaves(settings["n_species"], settings["n_per_species"], size=size,
                                          random_state=seed)
            source = f"procedural leaves: {settings['n_species']} species × {settings['n_per_species']}"
        else:
            images, species = _load_images(data, size)
            source = f"{data}"
        if species is None:
            species = np.zeros(len(images), dtype=np.int64)
        X = to_unit(images)
    n = len(X)
    if n < 10:
        raise CLIError(f"the demo needs at least 10 images, found {n}")
    shape = (size, size)
    _say(quiet, f"leafrbm demo: {n} images of {size}×{size} ({source}) → {out}/")

    order = rng.permutation(n)
    n_test = min(settings["n_test"], max(2, n // 10))
    test, train = order[:n_test], order[n_test:]
    X_train, X_test = X[train], X[test]

    # --- training, with a picture of the first layer's reconstructions after every epoch
    history = {"reconstruction error (layer 1)": []}
    showcase = X_test[:16]
    training_frames = []

    def on_epoch(layer, epoch, dbn):
        if layer == 0:
            recon = dbn.layers_[0].reconstruct(showcase)
            history["reconstruction error (layer 1)"].append(float(((recon - showcase) ** 2).mean()))
            tiles = viz.tile_images(np.concatenate([showcase, recon]), n_cols=16, image_shape=shape, scale=2)
            training_frames.append(tiles)
        return False

    dbn = DBN(hidden_layer_sizes=settings["layers"], learning_rate=settings["learning_rate"],
              batch_size=settings["batch_size"], n_iter=settings["epochs"], momentum=0.5,
              random_state=seed, n_jobs=n_jobs, verbose=0 if quiet else 1, callbacks=[on_epoch])
    with timer("train_dbn"):
        dbn.fit(X_train)
    depth_count = len(dbn.layers_)

    with timer("pictures"):
        viz.filters_image(dbn.layers_[0], shape, n=100).save(out / "filters.png")
        recon_by_depth = [dbn.reconstruct(X_test[:12], depth=d) for d in range(1, depth_count + 1)]
        viz.depth_grid(X_test[:12], recon_by_depth, image_shape=shape, scale=2).save(out / "depth.png")
        viz.save_gif(training_frames, out / "training.gif", duration_ms=300)
        viz.learning_curves(history, out / "learning_curves.png")
    depth_errors = {f"depth {d}": float(((r - X_test[:12]) ** 2).mean()) for d, r in enumerate(recon_by_depth, 1)}

    # --- occlusion experiment
    n_occ = min(settings["n_occlusion_images"], len(X_test))
    X_occ = X_test[:n_occ]
    with timer("occlusion"):
        # The whole network (up to the top, Gibbs there, down) and its first layer alone: the
        # deeper chain imagines a leaf of the right kind, the first layer keeps the pixels.
        kinds = [("rectangle", 0.25), ("half", 0.5), ("random_pixels", 0.5), ("blobs", 0.3)]
        table = occlusion_experiment(dbn, X_occ, masks=kinds, methods=("clamped", "naive"), X_train=X_train,
                                     image_shape=shape, n_steps=settings["inpaint_steps"], random_state=seed)
        shallow = occlusion_experiment(dbn, X_occ, masks=kinds, methods=("clamped",), X_train=None,
                                       image_shape=shape, n_steps=settings["inpaint_steps"], depth=1,
                                       random_state=seed)
        for row in shallow.rows:
            row["method"] = "clamped, depth 1"
        table.rows.extend(shallow.rows)
        table.rows.sort(key=lambda row: [k for k, _ in kinds].index(row["mask"]))
        mask = make_masks("rectangle", 6, shape, 0.25, random_state=seed)
        observed = mask.reshape(6, -1)
        shown = X_occ[:6] * observed
        filled = {
            f"clamped, depth {depth_count}": inpaint(dbn, X_occ[:6], observed, n_steps=settings["inpaint_steps"],
                                                     method="clamped", random_state=seed),
            "clamped, depth 1": inpaint(dbn, X_occ[:6], observed, n_steps=settings["inpaint_steps"],
                                        method="clamped", depth=1, random_state=seed),
            "naive": inpaint(dbn, X_occ[:6], observed, method="naive", random_state=seed),
            "mean image": np.where(observed, X_occ[:6], X_train.mean(0)),
        }
        viz.occlusion_panel(X_occ[:6], ~observed, shown, filled, image_shape=shape, scale=2).save(out / "occlusion.png")

    # --- leaf space: t-SNE of the top codes, frames of the map forming, imagined leaves
    snapshots = []

    def on_tsne(iteration, kl, embedding):
        snapshots.append(np.array(embedding, copy=True))
        return False

    tsne = TSNE(perplexity=min(30.0, (n - 1) / 3.0), max_iter=settings["tsne_iter"], random_state=seed,
                n_jobs=n_jobs, callbacks=on_tsne, callbacks_every_iters=25)
    with timer("leaf_space"):
        space = LeafSpace(dbn, tsne=tsne).fit(X)
        viz.map_with_thumbnails(space.embedding_, X, image_shape=shape, labels=species, size=1000,
                                thumb=40).save(out / "leaf_space.png")
        grid_images, _, outside = space.imagine_grid(8)
        viz.imagined_grid(grid_images.reshape(8, 8, -1), image_shape=shape, outside=outside.reshape(8, 8), scale=2).save(out / "imagined.png")
        viz.save_gif(viz.scatter_frames(snapshots, labels=species), out / "tsne.gif", duration_ms=120)
        loo = space.imagine(space.embedding_, exclude=np.arange(n))
        loo_error = float(((loo - X) ** 2).mean())
        mean_error = float(((X.mean(0) - X) ** 2).mean())
        same_species = _neighbour_agreement(space.embedding_, species)

    # --- dreams: a xerox of a xerox
    with timer("dream"):
        frames = dream(dbn, X_test[:16], n_steps=settings["dream_steps"], keep_every=2, random_state=seed)
        tiles = [viz.tile_images(frame, n_cols=8, image_shape=shape, scale=2) for frame in frames]
        viz.save_gif(tiles, out / "dream.gif", duration_ms=120)

    metrics = {
        "data": {"source": source, "n_images": n, "size": size, "n_train": len(train), "n_test": len(test),
                 "n_species": int(len(np.unique(species)))},
        "model": {"hidden_layer_sizes": list(settings["layers"]), "epochs_per_layer": settings["epochs"],
                  "learning_rate": settings["learning_rate"], "batch_size": settings["batch_size"], "seed": seed},
        "training_curve": history,
        "reconstruction_mse_by_depth": depth_errors,
        "occlusion": table.rows,
        "leaf_space": {"kl_divergence": float(getattr(tsne, "kl_divergence_", float("nan"))),
                       "n_iter": int(getattr(tsne, "n_iter_", 0)),
                       "leave_one_out_imagined_mse": loo_error, "mean_image_mse": mean_error,
                       "same_species_neighbour_rate": same_species["rate"],
                       "same_species_chance_rate": same_species["chance"]},
        "timings_s": timer.seconds,
        "total_s": round(time.perf_counter() - started, 3),
    }
    with open(out / "metrics.json", "w") as stream:
        json.dump(_jsonable(metrics), stream, indent=2)
    _write_report(out, metrics, table)
    _say(quiet, f"done in {metrics['total_s']:.1f} s: open {out / 'report.html'}")
    return metrics


def _neighbour_agreement(embedding, labels, k=5):
    """How often a point's k nearest map neighbours share its label, and that rate by chance."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(embedding) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding, return_distance=False)[:, 1:]
    rate = float((labels[neighbours] == labels[:, None]).mean())
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    chance = float(((counts * (counts - 1)).sum()) / (len(labels) * (len(labels) - 1)))
    return {"rate": rate, "chance": chance}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


_PICTURES = [
    ("filters.png", "First-layer filters", "What the first RBM's hidden units look for in a leaf."),
    ("training.gif", "Training", "Test leaves (top) and their first-layer reconstructions, epoch by epoch."),
    ("learning_curves.png", "Learning curve", "Reconstruction error of the first layer per epoch."),
    ("depth.png", "Reconstructions by depth", "Each test leaf, then its reconstruction from depth 1, 2, …"),
    ("occlusion.png", "Occluded leaves filled in", "Original, what the network saw, and each fill-in method."),
    ("leaf_space.png", "Leaf space", "t-SNE map of the top-level codes, drawn with the leaves themselves."),
    ("tsne.gif", "The map forming", "t-SNE iterations, coloured by species."),
    ("imagined.png", "Imagined leaves", "Leaves decoded at a grid of map positions (dimmed outside the map)."),
    ("dream.gif", "Dreams", "A xerox of a xerox: the network runs on its own output."),
]


def _write_report(out, metrics, table):
    leaf = metrics["leaf_space"]
    numbers = {
        "depth.png": "<br>".join(f"{k}: MSE {v:.4f}" for k, v in metrics["reconstruction_mse_by_depth"].items()),
        "leaf_space.png": (f"KL divergence {leaf['kl_divergence']:.3f} after {leaf['n_iter']} iterations; "
                           f"same-species map neighbours {leaf['same_species_neighbour_rate']:.1%} "
                           f"(chance {leaf['same_species_chance_rate']:.1%})"),
        "imagined.png": (f"Leave-one-out: imagined leaf MSE {leaf['leave_one_out_imagined_mse']:.4f} "
                         f"vs mean leaf {leaf['mean_image_mse']:.4f}"),
        "occlusion.png": _table_html(table),
        "learning_curves.png": ", ".join(f"{v:.4f}" for v in next(iter(metrics["training_curve"].values()))),
    }
    sections = []
    for file, title, caption in _PICTURES:
        sections.append(
            f"<section><h2>{html.escape(title)}</h2><p>{html.escape(caption)}</p>"
            f'<img src="{file}" alt="{html.escape(title)}"><div class="numbers">{numbers.get(file, "")}</div></section>'
        )
    timings = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.2f} s</td></tr>" for k, v in metrics["timings_s"].items())
    data = metrics["data"]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>leafrbm demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
img{{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}}section{{margin:2em 0}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
.numbers{{font-size:90%;color:#444;margin-top:.5em}}</style></head><body>
<h1>What a Deep Belief Network learns about leaves</h1>
<p>{html.escape(data['source'])}: {data['n_images']} images of {data['size']}×{data['size']} pixels
({data['n_train']} for training, {data['n_test']} held out). DBN {metrics['model']['hidden_layer_sizes']},
{metrics['model']['epochs_per_layer']} epochs per layer, seed {metrics['model']['seed']}.
Total time {metrics['total_s']:.1f} s. All numbers are in <a href="metrics.json">metrics.json</a>.</p>
{''.join(sections)}
<section><h2>Timings</h2><table>{timings}</table></section>
</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8")


def _table_html(table):
    head = "<tr><th>mask</th><th>fraction</th><th>method</th><th>MSE</th><th>cross-entropy</th></tr>"
    rows = "".join(
        f"<tr><td>{r['mask']}</td><td>{r['fraction']:.2f}</td><td>{r['method']}</td>"
        f"<td>{r['mse']:.4f}</td><td>{r['cross_entropy']:.4f}</td></tr>" for r in table.rows
    )
    return f"<table>{head}{rows}</table>"


# ----------------------------------------------------------------------------- other commands
def _cmd_demo(args):
    run_demo(out=args.out, data=args.data, size=args.size, seed=args.seed, quick=args.quick, quiet=args.quiet)


def _cmd_train(args):
    from .datasets import to_unit
    from .dbn import DBN
    from .io import save

    images, _ = _load_images(args.data, args.size)
    dbn = DBN(hidden_layer_sizes=tuple(args.layers), learning_rate=args.learning_rate, batch_size=args.batch_size,
              n_iter=args.epochs, momentum=args.momentum, random_state=args.seed, verbose=1)
    dbn.fit(to_unit(images))
    print(f"saved {save(dbn, args.model)}")


def _cmd_map(args):
    from . import viz
    from .datasets import to_unit
    from .leafspace import LeafSpace
    from .tsne import TSNE

    model = _load_model(args.model)
    side = _image_shape(model)
    images, labels = _load_images(args.data, side)
    X = to_unit(images)
    tsne = TSNE(perplexity=min(30.0, (len(X) - 1) / 3.0), random_state=args.seed, verbose=1)
    space = LeafSpace(model, depth=args.depth, tsne=tsne).fit(X)
    viz.map_with_thumbnails(space.embedding_, X, image_shape=(side, side), labels=labels).save(args.out)
    np.save(Path(args.out).with_suffix(".npy"), space.embedding_)
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.npy')} (KL {tsne.kl_divergence_:.3f})")


def _cmd_inpaint(args):
    from . import viz
    from .datasets import to_unit
    from .occlusion import inpaint, make_masks

    model = _load_model(args.model)
    side = _image_shape(model)
    images, _ = _load_images(args.data, side)
    X = to_unit(images)[: args.n]
    observed = make_masks(args.mask, len(X), (side, side), args.fraction, random_state=args.seed).reshape(len(X), -1)
    filled = {m: inpaint(model, X, observed, n_steps=args.steps, method=m, random_state=args.seed)
              for m in ("clamped", "naive")}
    viz.occlusion_panel(X, ~observed, X * observed, filled, image_shape=(side, side)).save(args.out)
    print(f"wrote {args.out}")


def _cmd_dream(args):
    from . import viz
    from .datasets import to_unit
    from .dream import dream

    model = _load_model(args.model)
    side = _image_shape(model)
    start = args.n if args.data is None else to_unit(_load_images(args.data, side)[0])[: args.n]
    frames = dream(model, start, n_steps=args.steps, keep_every=args.keep_every, random_state=args.seed)
    viz.save_gif([viz.tile_images(f, image_shape=(side, side), scale=2) for f in frames], args.out)
    print(f"wrote {args.out} ({len(frames)} frames)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="leafrbm",
        description="Deep Belief Networks that learn what a collection of leaf images is: "
                    "reconstruct, fill in, dream and map them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole leaf story and write pictures, GIFs and a report",
                          description="Train a DBN on leaves (built-in procedural leaves, or --data), then write "
                                      "filters.png, depth.png, occlusion.png, leaf_space.png, imagined.png, "
                                      "training.gif, tsne.gif, dream.gif, metrics.json and report.html.")
    demo.add_argument("--data", help="a folder of leaf images or an .npz (default: procedural leaves)")
    demo.add_argument("--out", default="leafrbm-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--size", type=_size, help="image side in pixels (default: 64, or 32 with --quick)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="a small, fast run (seconds) of the same story")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(run=_cmd_demo)

    train = sub.add_parser("train", help="train a DBN on a folder of images and save it",
                           description="Train a DBN on your images (folder or .npz) and save it as a .npz model.")
    train.add_argument("data", help="a folder of images or an .npz")
    train.add_argument("--model", required=True, help="where to save the model (.npz)")
    train.add_argument("--layers", type=_positive_int, nargs="+", default=[500, 250, 100], help="hidden layer sizes")
    train.add_argument("--epochs", type=_positive_int, default=10, help="epochs per layer")
    train.add_argument("--learning-rate", type=float, default=0.05)
    train.add_argument("--batch-size", type=_positive_int, default=20)
    train.add_argument("--momentum", type=float, default=0.5)
    train.add_argument("--size", type=_size, default=64, help="image side in pixels")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=_cmd_train)

    mapping = sub.add_parser("map", help="draw the t-SNE leaf space of a saved model's codes",
                             description="Encode images with a saved model, map the codes with t-SNE and draw "
                                         "the map with leaf thumbnails; the coordinates go to a .npy next to it.")
    mapping.add_argument("model", help="a model saved by `leafrbm train` or leafrbm.save")
    mapping.add_argument("data", help="a folder of images or an .npz")
    mapping.add_argument("--out", default="leaf_space.png")
    mapping.add_argument("--depth", type=_positive_int, help="code depth (default: top)")
    mapping.add_argument("--seed", type=int, default=0)
    mapping.set_defaults(run=_cmd_map)

    paint = sub.add_parser("inpaint", help="hide part of each image and let a saved model fill it in",
                           description="Occlude images with a mask and fill them in by clamped Gibbs sampling "
                                       "and by one reconstruction; writes a panel.")
    paint.add_argument("model")
    paint.add_argument("data")
    paint.add_argument("--mask", default="rectangle", choices=["rectangle", "half", "random_pixels", "blobs"])
    paint.add_argument("--fraction", type=float, default=0.25, help="fraction of pixels hidden")
    paint.add_argument("--steps", type=_positive_int, default=200, help="Gibbs steps of the clamped chain")
    paint.add_argument("--n", type=_positive_int, default=8, help="images to fill in")
    paint.add_argument("--out", default="inpaint.png")
    paint.add_argument("--seed", type=int, default=0)
    paint.set_defaults(run=_cmd_inpaint)

    dreaming = sub.add_parser("dream", help="let a saved model dream and write a GIF",
                              description="Run chains on their own output (a xerox of a xerox), from noise or "
                                          "from images, and write every kept frame into a GIF.")
    dreaming.add_argument("model")
    dreaming.add_argument("--data", help="start from these images (default: noise)")
    dreaming.add_argument("--n", type=_positive_int, default=16, help="chains")
    dreaming.add_argument("--steps", type=_positive_int, default=200)
    dreaming.add_argument("--keep-every", type=_positive_int, default=2)
    dreaming.add_argument("--out", default="dream.gif")
    dreaming.add_argument("--seed", type=int, default=0)
    dreaming.set_defaults(run=_cmd_dream)
    return parser


def main(argv=None):
    """Entry point of the ``leafrbm`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except CLIError as error:
        print(f"leafrbm {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"leafrbm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
