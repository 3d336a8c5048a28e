"""notes/explore.py: the explorer's numbers are the model's own, its API refuses what it cannot answer, it
leaves a training run alone, and the page shows it all in a real browser.

The runs are real and tiny: bigram_v1, bigram_v3 and gpt.py trained for 30 steps on the small text (a few
seconds each). The API tests talk HTTP to a real server on 127.0.0.1 and run everywhere; the browser test
drives headless Chromium through Selenium and skips, saying how to install them, where they are missing.
"""

import http.client
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import runner
import sampling
from notes import explore

from conftest import REPO_ROOT

PROMPT = "First Citi"  # in the small text's vocabulary, and shorter than the tiny runs' block_size
TINY = {  # stage -> flags: seconds to train, big enough to have every part the page shows
    "bigram_v1": ["--block-size", "16"],
    "bigram_v3": ["--n-embd", "16", "--n-head", "2", "--block-size", "16"],
    "gpt": ["--n-embd", "32", "--n-head", "2", "--n-layer", "2", "--block-size", "16"],
}
COMMON = ["--batch-size", "8", "--eval-interval", "10", "--eval-iters", "2", "--warmup-iters", "0",
          "--final-eval", "0", "--max-new-tokens", "0"]
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"


def flags(stage, out, data, iters):
    return ["--data", str(data), "--out", str(out), "--max-iters", str(iters), *TINY[stage], *COMMON]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory, small_text_path):
    root = tmp_path_factory.mktemp("out")
    for stage in TINY:  # in this process, as `python <stage>.py` would; bigram_v2 stays untrained
        assert importlib.import_module(stage).main(flags(stage, root / stage, small_text_path, 30)) == 0
    return root


class Server:
    """notes.explore's server on a free port, in a thread of this process."""

    def __init__(self, folders):
        self.httpd = explore.serve(folders, port=0)
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def request(self, path, params=None, method="GET", host=None):
        """(status, headers, body bytes) of one request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        target = path + ("?" + urlencode(params) if params else "")
        headers = {"Host": host} if host else {}
        conn.request(method, target, headers=headers)
        res = conn.getresponse()
        body = res.read()
        conn.close()
        return res.status, res.headers, body

    def get(self, path, **params):
        status, headers, body = self.request(path, params)
        assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
        return status, json.loads(body)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(out_root):
    s = Server(explore.find_runs(out_root))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gpt_run(out_root):
    return runner.load_run(out_root / "gpt", "gpt")


def model_probs(run, prompt, temperature=1.0, top_k=None):
    """The next character's probabilities, computed here from the model: raw, and as the sampler takes them."""
    idx = torch.tensor([run.tok.encode(prompt)])
    with torch.no_grad():
        logits = run.model(idx)[0][0, -1].double()  # (V,)
    raw = F.softmax(logits, dim=-1)
    if temperature == 0:
        return raw, F.one_hot(logits.argmax(), len(logits)).double()
    scaled = logits / temperature
    if top_k is not None:
        scaled[scaled < scaled.topk(top_k).values[-1]] = float("-inf")
    return raw, F.softmax(scaled, dim=-1)


# ----------------------------------------------------------------------------------------------------
# the numbers, without a browser


def test_runs_lists_each_stage_with_its_step_and_val_or_how_to_train_it(server, out_root, gpt_run):
    status, body = server.get("/api/runs")
    assert status == 200
    runs = {r["name"]: r for r in body["runs"]}
    assert list(runs) == list(runner.STAGES)
    assert (runs["gpt"]["step"], runs["gpt"]["val"]) == (gpt_run.step, round(gpt_run.val, 4))
    assert runs["gpt"]["trained"] and runs["gpt"]["finished"] and runs["gpt"]["busy"] is None
    assert not runs["bigram_v2"]["trained"]
    assert "python bigram_v2.py --out" in runs["bigram_v2"]["why"]


def test_predict_gives_the_models_own_probabilities_raw_and_as_sampled(server, gpt_run):
    for temperature, top_k in ((1.0, None), (0.7, 5), (1.6, 30), (0.0, None)):
        status, body = server.get("/api/predict", run="gpt", prompt=PROMPT, temperature=temperature,
                                  top_k=top_k or "")
        assert status == 200, body
        raw, drawn = model_probs(gpt_run, PROMPT, temperature, top_k)
        shown = body["next"]
        assert len(shown) == explore.TOP
        ids = [gpt_run.tok.stoi[c["char"]] for c in shown]
        assert_close(torch.tensor([c["raw"] for c in shown], dtype=torch.float64), raw[ids], atol=1e-6, rtol=0)
        assert_close(torch.tensor([c["p"] for c in shown], dtype=torch.float64), drawn[ids], atol=1e-6, rtol=0)
        # the likeliest to be drawn first, and every one of them: the bars are the top TOP of all V
        assert [c["p"] for c in shown] == sorted((c["p"] for c in shown), reverse=True)
        assert shown[-1]["p"] >= drawn.sort(descending=True).values[explore.TOP - 1].item() - 1e-6
        if top_k is not None and top_k <= explore.TOP:  # the k that can be drawn are all among the bars
            assert sum(c["p"] > 0 for c in shown) == top_k
            assert sum(c["p"] for c in shown) == pytest.approx(1.0, abs=1e-5)
        if temperature == 0:
            assert shown[0]["p"] == 1 and shown[0]["raw"] == max(c["raw"] for c in shown)


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.5, 3), (2.5, None), (1e-3, 10), (0.9, 1)])
def test_sampler_probs_are_what_sampling_stream_draws_from(gpt_run, monkeypatch, temperature, top_k):
    drawn_from = []
    multinomial = torch.multinomial

    def spy(probs, *args, **kwargs):  # the distribution the sampler hands to torch.multinomial
        drawn_from.append(probs.clone())
        return multinomial(probs, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", spy)
    idx = torch.tensor([gpt_run.tok.encode(PROMPT)])
    next(sampling.stream(gpt_run.model, idx, 1, temperature, top_k, torch.Generator().manual_seed(0),
                         block_size=gpt_run.cfg["block_size"]))
    with torch.no_grad():
        logits = gpt_run.model(idx)[0][0, -1]
    assert_close(explore.sampler_probs(logits, temperature, top_k), drawn_from[0][0].double())


@torch.no_grad()
def test_attention_is_the_one_gpt_computes(gpt_run):
    """The weights shown, times the layer's own values and projection, give exactly what each layer outputs."""
    model, idx = gpt_run.model, torch.tensor([gpt_run.tok.encode(PROMPT)])
    T = idx.size(1)
    weights = explore.attention(model, "gpt", idx)
    assert len(weights) == len(model.blocks)
    seen = {}
    hooks = [b.sa.register_forward_hook(lambda m, args, out: seen.__setitem__(m, (args[0], out)))
             for b in model.blocks]
    model(idx)
    for h in hooks:
        h.remove()
    for w, block in zip(weights, model.blocks):
        sa = block.sa
        x, y = seen[sa]  # (1, T, C) in, (1, T, C) out
        C = x.size(-1)
        assert w.shape == (sa.n_head, T, T)
        assert_close(w.sum(-1), torch.ones(sa.n_head, T))  # each row a distribution
        assert (w.triu(1) == 0).all()  # the future masked
        v = sa.qkv(x)[0, :, 2 * C :].view(T, sa.n_head, C // sa.n_head).transpose(0, 1)  # (n_head, T, hs)
        heads = (w @ v).transpose(0, 1).reshape(1, T, C)  # (1, T, C): the heads side by side
        assert_close(sa.proj(heads), y)


@torch.no_grad()
def test_attention_is_the_one_bigram_v3_computes(out_root):
    run = runner.load_run(out_root / "bigram_v3", "bigram_v3")
    idx = torch.tensor([run.tok.encode(PROMPT)])
    (w,) = explore.attention(run.model, "bigram_v3", idx)
    seen = {}
    hook = run.model.sa_heads.register_forward_hook(lambda m, args, out: seen.update(x=args[0], y=out))
    run.model(idx)
    hook.remove()
    assert (w.triu(1) == 0).all()
    values = torch.cat([w[i] @ head.value(seen["x"][0]) for i, head in enumerate(run.model.sa_heads.heads)], dim=-1)
    assert_close(values[None], seen["y"])
    assert explore.attention(run.model, "bigram_v1", idx) is None


def test_predict_sends_the_attention_and_none_for_bigram_v1(server, gpt_run):
    _, body = server.get("/api/predict", run="gpt", prompt=PROMPT, temperature=1, top_k="")
    expected = explore.attention(gpt_run.model, "gpt", torch.tensor([gpt_run.tok.encode(PROMPT)]))
    assert_close(torch.tensor(body["attention"]), torch.stack(expected), atol=1e-5, rtol=0)
    status, body = server.get("/api/predict", run="bigram_v1", prompt=PROMPT, temperature=1, top_k="")
    assert status == 200 and body["attention"] is None


def test_embedding_map_is_the_pca_of_the_table(server, gpt_run):
    _, body = server.get("/api/run", run="gpt")
    table = gpt_run.model.token_embedding_table.weight.detach().double()
    centred = table - table.mean(0)
    xy = torch.tensor(body["embeddings"]["tokens"]["xy"], dtype=torch.float64)
    # the centred rows along the first two right singular vectors, each up to its sign
    _, S, V = torch.linalg.svd(centred, full_matrices=False)
    for j in range(2):
        ref = centred @ V[j]
        assert_close(xy[:, j].abs(), ref.abs())
    assert sum(body["embeddings"]["tokens"]["share"]) <= 1
    assert len(body["embeddings"]["positions"]["xy"]) == gpt_run.cfg["block_size"]
    _, v1 = server.get("/api/run", run="bigram_v1")
    assert v1["embeddings"]["positions"] is None and v1["layers"] == 0


@pytest.mark.parametrize("params,status,words", [
    (dict(run="gpt", prompt="First €uro~"), 400, ["2 character(s) not in the vocabulary", "'€'", "'~'"]),
    (dict(run="nope", prompt=PROMPT), 404, ["no run named 'nope'", "bigram_v1, bigram_v2, bigram_v3, gpt"]),
    (dict(run="bigram_v2", prompt=PROMPT), 404, ["no trained bigram_v2 run", "python bigram_v2.py --out"]),
    (dict(run="gpt", prompt="a" * 17), 413, ["17 characters", "16", "block_size"]),
    (dict(run="gpt", prompt=""), 400, ["empty"]),
    (dict(run="gpt", prompt=PROMPT, temperature="hot"), 400, ["temperature", "'hot'"]),
    (dict(run="gpt", prompt=PROMPT, temperature="-0.5"), 400, ["temperature", "from 0 to 10"]),
    (dict(run="gpt", prompt=PROMPT, temperature="nan"), 400, ["temperature"]),
    (dict(run="gpt", prompt=PROMPT, temperature="11"), 400, ["temperature"]),
    (dict(run="gpt", prompt=PROMPT, top_k="2.5"), 400, ["top_k", "'2.5'"]),
    (dict(run="gpt", prompt=PROMPT, top_k="-1"), 400, ["top_k"]),
    (dict(run="gpt", prompt=PROMPT, top_k="999"), 400, ["top_k", "vocabulary"]),
])
def test_a_bad_request_gets_a_4xx_and_one_message_that_says_why(server, params, status, words):
    got, body = server.get("/api/predict", **params)
    assert got == status
    assert all(w in body["error"] for w in words), body["error"]
    got, body = server.get("/api/sample", **params, n=5)  # the sample checks the same fields, before it streams
    assert got == status, body


@pytest.mark.parametrize("n", ["0", "2001", "many"])
def test_a_sample_of_a_bad_length_is_refused(server, n):
    status, body = server.get("/api/sample", run="gpt", prompt=PROMPT, n=n)
    assert status == 400 and "n must be" in body["error"]


def test_only_get_from_this_machine_by_name_is_answered(server):
    status, _, body = server.request("/api/runs", method="POST")
    assert status == 405 and "GET" in json.loads(body)["error"]
    status, _, body = server.request("/api/runs", host="attacker.example:80")
    assert status == 403 and "127.0.0.1 only" in json.loads(body)["error"]
    status, _, body = server.request("/secrets")
    assert status == 404
    assert server.httpd.server_address[0] == "127.0.0.1"


def test_the_sample_streams_the_samplers_own_text(server, gpt_run):
    status, headers, body = server.request("/api/sample", dict(run="gpt", prompt=PROMPT, temperature=0.8,
                                                                top_k=10, n=50, seed=1234))
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    assert lines[-1] == {"done": True, "seed": 1234, "n": 50}
    assert all(len(line["text"]) == 1 for line in lines[:-1])  # one line per character, as it is drawn
    tokens = sampling.stream(gpt_run.model, torch.tensor([gpt_run.tok.encode(PROMPT)]), 50, 0.8, 10,
                             torch.Generator().manual_seed(1234), block_size=gpt_run.cfg["block_size"])
    assert "".join(line["text"] for line in lines[:-1]) == "".join(gpt_run.tok.decode(t[0].tolist()) for t in tokens)


def test_a_sample_nobody_reads_to_the_end_leaves_the_server_answering(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", f"/api/sample?run=gpt&prompt=First&n={explore.MAX_SAMPLE}")
    res = conn.getresponse()
    assert json.loads(res.readline())["text"]  # the first character, long before the last one is drawn
    conn.close()  # the page's Stop button
    assert server.get("/api/runs")[0] == 200


@pytest.mark.slow
def test_a_run_training_in_the_folder_is_not_blocked_and_is_followed(out_root, tmp_path, small_text_path,
                                                                      monkeypatch):
    """A training run resumes in the folder the page shows: it runs to the end (no lock taken, nothing held
    open), every request meanwhile is answered, and the page's run is then the new one."""
    folder = tmp_path / "gpt"
    shutil.copytree(out_root / "gpt", folder)
    (folder / "metrics.json").unlink()  # as if it had not finished: the page shows a run still going
    monkeypatch.setattr(explore, "RECHECK_BUSY", 0.0)  # a run seen training is read again at every request
    s = Server(explore.find_runs(run=folder))
    try:
        _, before = s.get("/api/run", run="gpt")
        assert before["finished"] is False and before["step"] == runner.load_run(folder, "gpt").step
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "gpt.py"), *flags("gpt", folder, small_text_path, 40),
                                 "--resume"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
        answered = 0
        while proc.poll() is None:  # ask all the time the run trains and saves
            status, body = s.get("/api/predict", run="gpt", prompt=PROMPT, temperature=1, top_k="")
            assert status == 200, body
            answered += 1
            time.sleep(0.1)  # leave the CPU to the training run between requests
        output = proc.stdout.read()
        assert proc.returncode == 0, output
        assert answered > 0
        _, after = s.get("/api/run", run="gpt")
        now = runner.load_run(folder, "gpt")
        assert after["finished"] is True and after["busy"] is None  # loaded again: metrics.json is there now
        assert (after["step"], after["val"], after["checkpoint"]) == (now.step, round(now.val, 4), Path(now.path).name)
    finally:
        s.stop()


# ----------------------------------------------------------------------------------------------------
# the command


@pytest.mark.slow
def test_the_command_prints_its_address_serves_and_stops_on_ctrl_c_with_one_line(out_root):
    proc = subprocess.Popen([sys.executable, "-m", "notes.explore", "--out-root", str(out_root), "--port", "0",
                             "--no-browser"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("explorer at http://127.0.0.1:") and "bigram_v1, bigram_v3, gpt" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/")
        res = conn.getresponse()
        page = res.read().decode("utf-8")
        assert res.status == 200 and "<script>" in page
        assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert err.strip() == "notes.explore: stopped"


@pytest.mark.parametrize("args,words", [
    (["--out-root", "{empty}"], ["no trained run in", "python bigram_v1.py"]),
    (["--run", "{empty}"], ["no checkpoint in", "--run"]),
])
def test_the_command_without_a_run_says_how_to_get_one(tmp_path, capsys, args, words):
    args = [a.format(empty=tmp_path) for a in args]
    assert explore.main([*args, "--port", "0", "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err


def test_the_command_on_a_port_in_use_says_so(out_root, server, capsys):
    assert explore.main(["--out-root", str(out_root), "--port", str(server.port), "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{server.port}" in err and "--port 0" in err, err


def test_run_finds_the_stage_of_a_folder_not_named_after_it(out_root, tmp_path):
    shutil.copytree(out_root / "bigram_v3", tmp_path / "my-run")
    assert explore.find_runs(run=tmp_path / "my-run") == {"my-run": ((tmp_path / "my-run").resolve(), "bigram_v3")}


# ----------------------------------------------------------------------------------------------------
# the page, in a real browser


def browser():
    """Headless Chromium driven by Selenium, or a skip that says what to install."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(f"selenium is not installed; for the browser test: {INSTALL}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip(f"no chromium and chromedriver on PATH; for the browser test: {INSTALL}")
    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    d = webdriver.Chrome(options=options, service=Service(driver))  # no Selenium Manager: it would download
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # a 1200 x 900 page, whatever the window
                      {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    return d


def page_bars(d):
    from selenium.webdriver.common.by import By

    return [(b.get_attribute("data-char"), float(b.find_element(By.CLASS_NAME, "p").text),
             float(b.find_element(By.CLASS_NAME, "raw").text.removeprefix("raw ")))
            for b in d.find_elements(By.CSS_SELECTOR, "#bars .bar")]


def check_bars(d, run, prompt, temperature, top_k):
    raw, drawn = model_probs(run, prompt, temperature, top_k)
    bars = page_bars(d)
    assert len(bars) == explore.TOP
    for char, p, r in bars:  # the page's 3 decimals are the model's numbers, rounded
        i = run.tok.stoi[char]
        assert abs(p - drawn[i].item()) <= 0.0005 + 1e-9 and abs(r - raw[i].item()) <= 0.0005 + 1e-9, (char, p, r)
    top = sorted(range(len(drawn)), key=lambda i: (-drawn[i].item(), -raw[i].item()))[: explore.TOP]
    assert {run.tok.stoi[c] for c, _, _ in bars} == set(top)
    return bars


def test_the_page_shows_the_models_numbers_in_a_real_browser(server, gpt_run, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser()
    wait = WebDriverWait(d, 60)

    def settled(prompt, temperature, top_k):  # the bars drawn for exactly these settings
        want = json.dumps([prompt, temperature, top_k], separators=(",", ":"))
        wait.until(lambda d: d.find_element(By.ID, "bars").get_attribute("data-for") == want)

    try:
        # load: the gpt run, its step and val loss in the header
        d.get(server.url)
        settled("First Citizen:", "1", "0")
        header = d.find_element(By.ID, "runinfo").text
        assert header.startswith("gpt · step 30 ·") and f"val loss {gpt_run.val:.4f}" in header, header

        # type a prompt; read the bars
        box = d.find_element(By.ID, "prompt")
        box.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
        box.send_keys(PROMPT)
        settled(PROMPT, "1", "0")
        check_bars(d, gpt_run, PROMPT, 1.0, None)

        # hover a head: layer 1, head 1, the row of the prompt's 6th character
        idx = torch.tensor([gpt_run.tok.encode(PROMPT)])
        weights = explore.attention(gpt_run.model, "gpt", idx)
        q = 5
        hover = f'svg.heat[data-layer="1"][data-head="1"] rect[data-q="{q}"][data-k="2"]'  # redrawn on every change
        ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, hover)).perform()
        looks = d.find_element(By.ID, "looks")
        wait.until(lambda d: (looks.get_attribute("data-layer"), looks.get_attribute("data-head"),
                              looks.get_attribute("data-q")) == ("1", "1", str(q)))
        shown = [s.text for s in looks.find_elements(By.CSS_SELECTOR, ".chars .w")]
        assert len(shown) == len(PROMPT)
        assert shown[q + 1 :] == ["masked"] * (len(PROMPT) - q - 1)  # the future
        row = [float(t) for t in shown[: q + 1]]
        assert abs(sum(row) - 1) <= 0.0005 * (q + 1)  # a distribution, to the page's rounding
        assert_close(torch.tensor(row, dtype=torch.float64), weights[1][1, q, : q + 1].double(), atol=0.0005, rtol=0)
        # no square of any heat map lies in the future; the future is one masked shape per head
        cells = d.find_elements(By.CSS_SELECTOR, "svg.heat rect.cell")
        assert len(cells) == 4 * len(PROMPT) * (len(PROMPT) + 1) // 2  # 2 layers x 2 heads, the past and present only
        assert len(d.find_elements(By.CSS_SELECTOR, "svg.heat path.masked")) == 4

        # move the temperature (the slider's arrow keys: 0.05 a press) and set top-k
        slider = d.find_element(By.ID, "temperature")
        slider.send_keys(*[Keys.ARROW_LEFT] * 6)
        topk = d.find_element(By.ID, "topk")
        topk.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
        topk.send_keys("5")
        settled(PROMPT, "0.7", "5")
        assert d.find_element(By.ID, "tempout").text == "0.70"
        bars = check_bars(d, gpt_run, PROMPT, 0.7, 5)
        assert sum(p > 0 for _, p, _ in bars) == 5

        # sample with a seed: the page shows the sampler's own text
        for name, value in (("n", "60"), ("seed", "123")):
            field = d.find_element(By.ID, name)
            field.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
            field.send_keys(value)
        d.find_element(By.ID, "go").click()
        wait.until(lambda d: "seed 123" in d.find_element(By.ID, "samplestate").text)
        tokens = sampling.stream(gpt_run.model, idx, 60, 0.7, 5, torch.Generator().manual_seed(123),
                                 block_size=gpt_run.cfg["block_size"])
        expected = "".join(gpt_run.tok.decode(t[0].tolist()) for t in tokens)
        assert d.execute_script("return document.getElementById('drawn').textContent") == expected
        assert d.find_element(By.ID, "error").text == ""

        ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, hover)).perform()  # for the picture
        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert severe == []  # no script error on the page
        png = tmp_path / "explorer.png"
        d.save_screenshot(str(png))
        assert png.read_bytes()[16:24] == (1200).to_bytes(4, "big") + (900).to_bytes(4, "big")  # PNG's width, height
        if os.environ.get("UPDATE_SCREENSHOT"):  # the README's picture: UPDATE_SCREENSHOT=1 python -m pytest -k browser
            learners = REPO_ROOT / "out"
            if explore.has_checkpoint(learners / "gpt"):  # your own gpt.py run draws a livelier page than the tiny one
                picture(d, learners, png)
            shutil.copyfile(png, REPO_ROOT / "notes" / "img" / "explorer.png")
    finally:
        d.quit()


def picture(d, out_root, png):
    """The page on the runs in out_root, as a learner first sees it, with a sample drawn and a head hovered."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    s = Server(explore.find_runs(out_root))
    try:
        wait = WebDriverWait(d, 120)
        d.get(s.url)
        wait.until(lambda d: d.find_element(By.ID, "bars").get_attribute("data-for"))
        d.find_element(By.ID, "seed").send_keys("1")
        d.find_element(By.ID, "go").click()
        wait.until(lambda d: "seed 1:" in d.find_element(By.ID, "samplestate").text)
        cells = d.find_elements(By.CSS_SELECTOR, 'svg.heat[data-head="1"] rect.cell')
        if cells:
            ActionChains(d).move_to_element(cells[-3]).perform()
        d.save_screenshot(str(png))
    finally:
        s.stop()
