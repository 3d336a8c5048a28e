"""notes/explore.py: look inside a model you trained, in your browser.

Run it from the repository root once a stage has trained (`python gpt.py`, say):

    python -m notes.explore                         # the runs in out/ (bigram_v1 ... gpt); opens a browser tab
    python -m notes.explore --run out/gpt           # one run folder, wherever it is
    python -m notes.explore --port 0 --no-browser   # any free port; only print the address
    python -m notes.explore --help                  # every flag

The page (notes/explore.html) shows the run's step and val loss; for a prompt you type, every candidate
for the next character with its probability, raw and as the sampler draws it (temperature and top-k
applied); for bigram_v3 and gpt.py every head's attention over the prompt; a sample drawn while you watch;
and the token and position embeddings seen along their two widest directions, as notes/figures.py draws
them. Ctrl-C stops the server.

How it stays out of the way: it listens on 127.0.0.1 only (nothing else on the network can reach it); it
only reads a run folder, through runner.load_run, without its lock, so a run may go on training there; and
it loads a run again when a file in its folder changes, so the page follows a run as it trains.
The page asks this server for JSON (the API below); a sample comes as one JSON line per character, sent
as it is drawn. Nothing is fetched from the internet.

    GET /api/runs                       every run: stage, step, val loss, or the command that trains it
    GET /api/run?run=NAME               one run, with its embeddings' 2-D map
    GET /api/predict?run=&prompt=&temperature=&top_k=    next-character probabilities and attention
    GET /api/sample?run=&prompt=&temperature=&top_k=&n=&seed=   a sample, one line {"text": c} per character
"""

import argparse
import json
import math
import secrets
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import torch
import torch.nn.functional as F

import runner
import sampling
from notes.figures import bigram_v3_attention, embedding_map, gpt_attention, shown

ROOT = Path(__file__).resolve().parents[1]
PAGE = Path(__file__).with_name("explore.html")
ATTENTION_STAGES = ("bigram_v3", "gpt")  # the stages with attention to show
TOP = 20  # the page draws this many candidates for the next character
MAX_TEMPERATURE = 10.0  # far past where text turns to noise; the page's slider stops at 2
MAX_SAMPLE = 2000  # characters one sample may ask for
DEFAULT_PORT = 8765
RECHECK_BUSY = 10.0  # seconds: a run that was training is read again this often, so the page sees it end


class Problem(Exception):
    """A request the server cannot answer: an HTTP status and one line that says why and what to do."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------------------------------
# what the page shows, computed from the model's own modules


def sampler_probs(logits, temperature, top_k):
    """The probabilities sampling.stream draws the next character from: logits (V,) -> (V,), float64."""
    return sampling.probabilities(logits[None], temperature, top_k)[0]


@torch.no_grad()
def next_char(model, idx, temperature, top_k):
    """For idx (1, T): the next character's probabilities, raw (softmax of the logits) and as sampled. Each (V,)."""
    logits, _ = model(idx)  # (1, T, V)
    last = logits[0, -1]  # (V,): what the model predicts after the prompt's last character
    return F.softmax(last.double(), dim=-1), sampler_probs(last, temperature, top_k)


@torch.no_grad()
def attention(model, stage, idx):
    """Every layer's attention weights for idx (1, T): a list of (n_head, T, T), one per layer; None for the
    stages without attention. Row t is what position t looks at; everything right of the diagonal is 0.

    Neither model hands its weights out: bigram_v3's Heads keep them inside forward, and gpt.py's layers
    compute them inside F.scaled_dot_product_attention. So notes/figures.py computes them again from the very q and
    k the model makes from its layer's input, split into heads as the model splits them.
    """
    if stage == "bigram_v3":
        return [bigram_v3_attention(model, idx)[0]]  # [(n_head, T, T)]: one layer of heads
    if stage == "gpt":
        return [w[0] for w in gpt_attention(model, idx)]  # one (n_head, T, T) per block
    return None


# ----------------------------------------------------------------------------------------------------
# the runs: found once, each loaded by runner.load_run and loaded again when its folder changes


def number(x, digits=6):
    """A float for JSON: rounded (the page shows 3 or 4 decimals), and None for nan, which JSON lacks."""
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def folder_stamp(folder):
    """What changes whenever a run writes in folder: every file's name, modification time and size."""
    stamp = []
    for entry in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else ():
        try:
            st = entry.stat()
        except FileNotFoundError:  # a temporary file renamed onto its checkpoint just now
            continue
        stamp.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(stamp)


def has_checkpoint(folder):
    return Path(folder).is_dir() and any(Path(folder).glob("*.pt"))


class Loaded:
    """A run as load_run read it, with what the page shows of it that does not depend on a prompt."""

    def __init__(self, name, run):
        self.name, self.run, self.when = name, run, time.monotonic()
        model = run.model
        tokens = embedding_map(model.token_embedding_table.weight)
        positions = (embedding_map(model.position_embedding_table.weight)
                     if hasattr(model, "position_embedding_table") else None)  # bigram_v1 has none
        self.embeddings = {
            "tokens": {"xy": tokens[0].tolist(), "share": tokens[1].tolist(), "chars": run.tok.chars,
                       "width": model.token_embedding_table.weight.size(1)},
            "positions": None if positions is None else {"xy": positions[0].tolist(), "share": positions[1].tolist()},
        }
        probe = attention(model, run.stage, torch.zeros(1, 1, dtype=torch.long))  # its layers and heads, counted
        self.layers, self.heads = (len(probe), probe[0].size(0)) if probe else (0, 0)

    def summary(self, folder):
        run = self.run
        return {"name": self.name, "stage": run.stage, "trained": True, "folder": shown(folder),
                "checkpoint": Path(run.path).name, "step": run.step, "val": number(run.val, 4),
                "finished": run.metrics is not None, "busy": None if run.busy is None else str(run.busy),
                "block_size": run.cfg["block_size"], "vocab": run.tok.chars,
                "params": sum(p.numel() for p in run.model.parameters()),
                "layers": self.layers, "heads": self.heads}


class Runs:
    """The runs the page can show, by name: name -> (folder, stage). Loaded when first asked for, and again
    whenever a file in the folder has changed since (a training run saved a checkpoint there)."""

    def __init__(self, folders):
        self.folders = folders
        self.cache = {}  # name -> (folder_stamp, Loaded)
        self.lock = threading.Lock()  # ours, in this process: two requests never load one run twice at once

    def get(self, name):
        if name not in self.folders:
            raise Problem(404, f"no run named {name!r}; the runs are: {', '.join(self.folders)}")
        folder, stage = self.folders[name]
        with self.lock:
            stamp = folder_stamp(folder)
            hit = self.cache.get(name)
            # a run that ends leaves its lock file as it was, so the end of one is seen by reading it again
            if hit is not None and hit[0] == stamp and not (hit[1].run.busy and
                                                            time.monotonic() - hit[1].when > RECHECK_BUSY):
                return hit[1]
            if not has_checkpoint(folder):
                raise Problem(404, f"no trained {stage} run in {shown(folder)} yet; train one with "
                                   f"`python {stage}.py --out {shown(folder)}`")
            try:
                loaded = Loaded(name, runner.load_run(folder, stage))
            except Exception as e:  # load_run's one line: a corrupt checkpoint, another stage's
                raise Problem(409, f"cannot read the run in {shown(folder)}: {e}") from None
            self.cache[name] = (stamp, loaded)
            return loaded

    def summary(self, name):
        folder, stage = self.folders[name]
        try:
            return self.get(name).summary(folder)
        except Problem as e:
            return {"name": name, "stage": stage, "trained": False, "folder": shown(folder), "why": str(e)}


def find_runs(out_root=None, run=None):
    """name -> (folder, stage): the one folder --run names, or out_root/<stage> for every stage."""
    if run is None:
        folders = {stage: (Path(out_root).resolve() / stage, stage) for stage in runner.STAGES}
        if not any(has_checkpoint(folder) for folder, _ in folders.values()):
            raise Problem(404, f"no trained run in {shown(out_root)} (looked for {', '.join(runner.STAGES)}); "
                               f"train one first, e.g. `python bigram_v1.py` (seconds) or `python gpt.py`, or "
                               f"name a run folder with --run")
        return folders
    folder = Path(run).resolve()
    if not has_checkpoint(folder):
        raise Problem(404, f"no checkpoint in {shown(folder)}; point --run at a folder a stage trained "
                           f"(`python gpt.py --out DIR`)")
    return {folder.name: (folder, stage_of(folder))}


def stage_of(folder):
    """Which stage wrote the run in folder: the folder's name if it is a stage's, else the stage that loads it."""
    stages = sorted(runner.STAGES, key=lambda s: s != folder.name)  # the folder's namesake first
    errors = []
    for stage in stages:
        try:
            runner.load_run(folder, stage)
            return stage
        except Exception as e:  # another stage's checkpoint (or a corrupt one: then every stage fails)
            errors.append(str(e))
    raise Problem(409, f"cannot read the run in {shown(folder)}: {errors[0]}")


# ----------------------------------------------------------------------------------------------------
# the requests: checked where they enter, each mistake one message and a 4xx status


def field(query, name, default=None):
    values = query.get(name)
    return values[0] if values else default


def parse_prompt(query, run):
    prompt = field(query, "prompt", "")
    block = run.cfg["block_size"]
    if not prompt:
        raise Problem(400, "the prompt is empty; type at least one character")
    if len(prompt) > block:
        raise Problem(413, f"the prompt has {len(prompt)} characters, more than the {block} this {run.stage} run "
                           f"sees at once (its block_size); shorten it")
    if any(c not in run.tok.stoi for c in prompt):
        raise Problem(400, f"the prompt has {run.tok.unknown_message(prompt)}")
    return prompt


def parse_temperature(query):
    text = field(query, "temperature", "1")
    try:
        t = float(text)
    except ValueError:
        t = float("nan")
    if not 0 <= t <= MAX_TEMPERATURE:  # nan fails this too
        raise Problem(400, f"temperature must be a number from 0 to {MAX_TEMPERATURE:g}, got {text!r}")
    return t


def parse_int(query, name, low, high, what):
    text = field(query, name, "")
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not low <= n <= high:
        raise Problem(400, f"{name} must be {what}, got {text!r}")
    return n


def parse_top_k(query, run):
    if field(query, "top_k", "") in ("", "0"):  # none: every character may be drawn
        return None
    V = run.tok.vocab_size
    return parse_int(query, "top_k", 1, V, f"a whole number from 1 to {V} (the vocabulary), or 0 or empty for all")


def predict(loaded, query):
    run = loaded.run
    prompt, temperature, top_k = parse_prompt(query, run), parse_temperature(query), parse_top_k(query, run)
    idx = torch.tensor([run.tok.encode(prompt)])  # (1, T)
    raw, drawn = next_char(run.model, idx, temperature, top_k)
    order = sorted(range(len(raw)), key=lambda i: (-drawn[i].item(), -raw[i].item()))[:TOP]
    weights = attention(run.model, run.stage, idx)
    return {"prompt": prompt, "temperature": temperature, "top_k": top_k, "vocab_size": run.tok.vocab_size,
            "next": [{"char": run.tok.chars[i], "p": number(drawn[i]), "raw": number(raw[i])} for i in order],
            "attention": None if weights is None else [[[[number(w, 5) for w in row] for row in head]
                                                        for head in layer.tolist()] for layer in weights]}


def sample_lines(loaded, query):
    """Check every field first (a mistake is a 4xx before anything streams); then yield the sample's lines."""
    run = loaded.run
    prompt, temperature, top_k = parse_prompt(query, run), parse_temperature(query), parse_top_k(query, run)
    n = parse_int(query, "n", 1, MAX_SAMPLE, f"a whole number of characters from 1 to {MAX_SAMPLE}")
    if field(query, "seed", "") == "":
        seed = secrets.randbelow(1_000_000)  # a new text every time, and its seed shown to draw it again
    else:
        seed = parse_int(query, "seed", 0, 2**63 - 1, "a whole number from 0 up, or empty for a new one")

    def lines():
        idx = torch.tensor([run.tok.encode(prompt)])  # (1, T)
        tokens = sampling.stream(run.model, idx, n, temperature, top_k, torch.Generator().manual_seed(seed),
                                 block_size=run.cfg["block_size"])
        for token in tokens:  # (1, 1) each, as it is drawn
            yield {"text": run.tok.decode(token[0].tolist())}
        yield {"done": True, "seed": seed, "n": n}

    return lines()


# ----------------------------------------------------------------------------------------------------
# the server


class Handler(BaseHTTPRequestHandler):
    server_version = "notes.explore"

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        runs = self.server.runs
        try:
            self.check_host()
            if url.path in ("/", "/index.html"):
                return self.send(200, "text/html; charset=utf-8", PAGE.read_bytes())
            if url.path == "/api/runs":
                return self.send_json(200, {"runs": [runs.summary(name) for name in runs.folders]})
            if url.path not in ("/api/run", "/api/predict", "/api/sample"):
                raise Problem(404, f"nothing at {url.path}; the page is at /")
            loaded = runs.get(field(query, "run", ""))
            if url.path == "/api/run":
                folder, _ = runs.folders[loaded.name]
                return self.send_json(200, {**loaded.summary(folder), "embeddings": loaded.embeddings})
            if url.path == "/api/predict":
                return self.send_json(200, predict(loaded, query))
            self.stream_json(sample_lines(loaded, query))
        except Problem as e:
            self.send_json(e.status, {"error": str(e)})

    def do_POST(self):
        self.send_json(405, {"error": "this server answers GET requests only"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def check_host(self):
        """Answer only requests addressed to this machine by name: a web page elsewhere cannot point a name
        of its own at 127.0.0.1 and read the answers (DNS rebinding)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            raise Problem(403, f"this server answers requests for 127.0.0.1 only, not {host!r}")

    def send(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # a run changes as it trains
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send(status, "application/json", json.dumps(obj, ensure_ascii=False).encode("utf-8"))

    def stream_json(self, lines):
        """One JSON object per line, each sent as soon as it is made; the response ends when the connection
        closes (HTTP/1.0), so the page reads each character as the model draws it."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            for line in lines:
                self.wfile.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the page stopped reading: Stop, or a new sample
            pass

    def log_message(self, format, *args):  # a quiet terminal: the page shows what goes wrong
        pass


def serve(folders, port=0):
    """A server on 127.0.0.1:port (0: any free port) for the runs in folders; serve_forever() runs it."""
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True  # Ctrl-C does not wait for a sample still streaming
    server.runs = Runs(folders)
    return server


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m notes.explore", description=__doc__.strip().splitlines()[0])
    p.add_argument("--out-root", metavar="DIR", default=str(ROOT / "out"),
                   help="where the runs are, one folder per stage (default: out/ in the repository)")
    p.add_argument("--run", metavar="PATH", help="show this one run folder instead (any stage's --out)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the port on 127.0.0.1 (default: {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab; only print the address")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        folders = find_runs(args.out_root, args.run)
        server = serve(folders, args.port)
    except Problem as e:
        print(f"notes.explore: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the port is taken, or not ours to use
        print(f"notes.explore: error: cannot listen on 127.0.0.1:{args.port} ({e.strerror or e}); choose another "
              f"--port, or --port 0 for any free one", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{server.server_port}/"
    trained = [name for name, (folder, _) in folders.items() if has_checkpoint(folder)]
    print(f"explorer at {url} showing {', '.join(trained)} (Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nnotes.explore: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
