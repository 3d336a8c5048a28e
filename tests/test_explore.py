"""notes/explore.py: the explorer's numbers are the model's own, its API refuses what it cannot answer, it
leaves a training run alone, and the page shows it all in a real browser.

The runs are real and tiny: bigram_v1, bigram_v3 and gpt.py trained with helpers.tiny's flags (seconds
each; gpt.py with 2 layers, its default, so that the order of the layers shows); bigram_v2 stays untrained.
The API tests talk HTTP to a real server on 127.0.0.1 and run everywhere; the browser test drives headless
Chromium through Selenium and skips, saying how to install them, where they are missing.
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
import urllib.request
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import runner
import sampling
from notes import explore, figures

from helpers import REPO_ROOT, one_line_error, tiny

PROMPT = "First Citi"  # in the small text's vocabulary, and shorter than the tiny runs' block_size (16)
TRAINED = ("bigram_v1", "bigram_v3", "gpt")
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"


def flags(stage, out, data, **changes):
    changes = {"n_layer": 2 if stage == "gpt" else None, "max_new_tokens": 0, "final_eval": 0, **changes}
    return [*tiny(stage, **changes), "--data", str(data), "--out", str(out)]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory, small_text_path):
    root = tmp_path_factory.mktemp("out")
    for stage in TRAINED:  # in this process, as `python <stage>.py` would
        assert importlib.import_module(stage).main(flags(stage, root / stage, small_text_path)) == 0
    return root


@pytest.fixture(scope="module")
def runs(out_root):
    """stage -> the trained run, as runner.load_run reads it."""
    return {stage: runner.load_run(out_root / stage, stage) for stage in TRAINED}


@contextmanager
def serving(folders):
    """notes.explore's server for folders on a free port, in a thread of this process."""
    httpd = explore.serve(folders, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(out_root):
    with serving(explore.find_runs(out_root)) as httpd:
        yield httpd


def request(httpd, path, params=None, method="GET", host=None):
    """(status, headers, body bytes) of one request to httpd."""
    conn = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=60)
    conn.request(method, f"{path}?{urlencode(params or {})}", headers={"Host": host} if host else {})
    res = conn.getresponse()  # the server closes the connection after each answer (HTTP/1.0)
    return res.status, res.headers, res.read()


def get(httpd, path, status=200, method="GET", host=None, **params):
    """The JSON body of a request that must answer with this status, in JSON."""
    got, headers, body = request(httpd, path, params, method, host)
    assert got == status and headers["Content-Type"].startswith("application/json"), (got, body)
    return json.loads(body)


def drawn_text(run, n, temperature, top_k, seed):
    """What sampling.stream draws after PROMPT with this seed: the text the page must show."""
    tokens = sampling.stream(run.model, torch.tensor([run.tok.encode(PROMPT)]), n, temperature, top_k,
                             torch.Generator().manual_seed(seed), block_size=run.cfg["block_size"])
    return "".join(run.tok.decode(t[0].tolist()) for t in tokens)


# ----------------------------------------------------------------------------------------------------
# the numbers, without a browser


def test_runs_lists_each_stage_with_its_step_and_val_or_how_to_train_it(server, runs):
    listed = {r["name"]: r for r in get(server, "/api/runs")["runs"]}
    assert list(listed) == list(runner.STAGES)
    assert (listed["gpt"]["step"], listed["gpt"]["val"]) == (runs["gpt"].step, round(runs["gpt"].val, 4))
    assert listed["gpt"]["trained"] and listed["gpt"]["finished"] and listed["gpt"]["busy"] is None
    assert not listed["bigram_v2"]["trained"] and "python bigram_v2.py --out" in listed["bigram_v2"]["why"]


# the sampler's own distributions (what it draws from them: test_sampling) at greedy, top-k and plain settings
@pytest.mark.parametrize("stage,temperature,top_k", [
    ("gpt", 1.0, None), ("gpt", 0.7, 5), ("gpt", 0.0, None), ("bigram_v3", 0.5, 3), ("bigram_v1", 2.5, None)])
def test_predict_gives_the_models_own_probabilities_and_attention(server, runs, stage, temperature, top_k):
    run, idx = runs[stage], torch.tensor([runs[stage].tok.encode(PROMPT)])
    body = get(server, "/api/predict", run=stage, prompt=PROMPT, temperature=temperature, top_k=top_k or "")
    logits = run.model(idx)[0][0, -1].detach()  # (V,)
    raw, drawn = F.softmax(logits.double(), dim=-1), sampling.probabilities(logits[None], temperature, top_k)[0]
    ids = [run.tok.stoi[c["char"]] for c in body["next"]]
    assert_close(torch.tensor([c["raw"] for c in body["next"]], dtype=torch.float64), raw[ids], atol=1e-6, rtol=0)
    assert_close(torch.tensor([c["p"] for c in body["next"]], dtype=torch.float64), drawn[ids], atol=1e-6, rtol=0)
    # the bars: the TOP likeliest of all V to be drawn, likeliest first, ties by the raw probability
    assert ids == sorted(range(len(raw)), key=lambda i: (-drawn[i].item(), -raw[i].item()))[: explore.TOP]
    if stage == "bigram_v1":
        assert body["attention"] is None
    else:  # every layer's heads in the model's order, as test_figures proves them the layers' own
        layers = [figures.bigram_v3_attention(run.model, idx)] if stage == "bigram_v3" else \
            figures.gpt_attention(run.model, idx)
        assert_close(torch.tensor(body["attention"]), torch.cat(layers), atol=1e-5, rtol=0)


def test_the_embedding_maps_are_the_figures_pca_of_each_table(server, runs):
    body = get(server, "/api/run", run="gpt")
    model = runs["gpt"].model
    for name, table in (("tokens", model.token_embedding_table), ("positions", model.position_embedding_table)):
        served = [torch.tensor(body["embeddings"][name][key], dtype=torch.float64) for key in ("xy", "share")]
        # (N, 2) points and the two shares; the PCA itself is tested with the embeddings figure
        assert_close(served, list(figures.embedding_map(table.weight)), atol=1e-5, rtol=0)
    v1 = get(server, "/api/run", run="bigram_v1")
    assert v1["embeddings"]["positions"] is None and v1["layers"] == 0


@pytest.mark.parametrize("params,status,words", [
    (dict(run="gpt", prompt="First €uro~"), 400, ["2 character(s) not in the vocabulary", "'€'", "'~'"]),
    (dict(run="nope", prompt=PROMPT), 404, ["no run named 'nope'", "bigram_v1, bigram_v2, bigram_v3, gpt"]),
    (dict(run="bigram_v2", prompt=PROMPT), 404, ["no trained bigram_v2 run", "python bigram_v2.py --out"]),
    (dict(run="gpt", prompt="a" * 17), 413, ["17 characters", "16", "block_size"]),
    (dict(run="gpt", prompt=""), 400, ["empty"]),
    (dict(run="gpt", prompt=PROMPT, temperature="hot"), 400, ["temperature", "'hot'"]),
    (dict(run="gpt", prompt=PROMPT, temperature="-0.5"), 400, ["temperature", "from 0 to 10"]),
    (dict(run="gpt", prompt=PROMPT, temperature="11"), 400, ["temperature"]),
    (dict(run="gpt", prompt=PROMPT, top_k="999"), 400, ["top_k", "vocabulary"]),
    (dict(run="gpt", prompt=PROMPT, n="0"), 400, ["n must be"]),  # n: the sample's length, for /api/sample only
    (dict(run="gpt", prompt=PROMPT, n="2001"), 400, ["n must be"]),
    (dict(run="gpt", prompt=PROMPT, n="many"), 400, ["n must be", "'many'"]),  # top_k is read by the same code
])
def test_a_bad_request_gets_a_4xx_and_one_message_that_says_why(server, params, status, words):
    paths = ["/api/sample"] if "n" in params else ["/api/predict", "/api/sample"]
    for path in paths:  # the sample checks every field before it streams
        body = get(server, path, status, **{"n": 5, **params} if path == "/api/sample" else params)
        assert all(w in body["error"] for w in words), (path, body)


def test_only_get_from_this_machine_by_name_is_answered(server):
    assert "GET" in get(server, "/api/runs", 405, method="POST")["error"]
    assert "127.0.0.1 only" in get(server, "/api/runs", 403, host="attacker.example:80")["error"]
    assert "nothing at /secrets" in get(server, "/secrets", 404)["error"]
    assert server.server_address[0] == "127.0.0.1"


def test_the_sample_streams_the_samplers_own_text(server, runs):
    status, headers, body = request(server, "/api/sample", dict(run="gpt", prompt=PROMPT, temperature=0.8,
                                                                top_k=10, n=50, seed=1234))
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in body.decode("utf-8").splitlines()]
    assert lines[-1] == {"done": True, "seed": 1234, "n": 50}
    assert all(len(line["text"]) == 1 for line in lines[:-1])  # one line per character, as it is drawn
    assert "".join(line["text"] for line in lines[:-1]) == drawn_text(runs["gpt"], 50, 0.8, 10, seed=1234)


@pytest.mark.slow
def test_a_run_training_in_the_folder_is_not_blocked_and_is_followed(out_root, tmp_path, small_text_path,
                                                                      monkeypatch):
    """A training run resumes in the folder the page shows: it runs to the end (no lock taken, nothing held
    open), every request meanwhile is answered, and the page's run is then the new one. The folder is not
    named after its stage: --run finds the stage that wrote it."""
    folder = tmp_path / "my-run"
    shutil.copytree(out_root / "gpt", folder)
    (folder / runner.METRICS).unlink()  # as if it had not finished: the page shows a run still going
    monkeypatch.setattr(explore, "RECHECK_BUSY", 0.0)  # a run seen training is read again at every request
    with serving(explore.find_runs(run=folder)) as httpd:
        before = get(httpd, "/api/run", run="my-run")  # the folder's own name, and the stage that wrote it
        assert before["finished"] is False and before["step"] == runner.load_run(folder, "gpt").step
        proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "gpt.py"), "--resume",
                                 *flags("gpt", folder, small_text_path, max_iters=30)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
        answered = 0
        while proc.poll() is None:  # ask all the time the run trains and saves
            get(httpd, "/api/predict", run="my-run", prompt=PROMPT, temperature=1, top_k="")  # answered: 200
            answered += 1
            time.sleep(0.1)  # leave the CPU to the training run between requests
        assert proc.returncode == 0 and answered > 0, proc.stdout.read()
        after = get(httpd, "/api/run", run="my-run")
        now = runner.load_run(folder, "gpt")
        assert after["finished"] is True and after["busy"] is None  # loaded again: metrics.json is there now
        assert (after["step"], after["val"], after["checkpoint"]) == (now.step, round(now.val, 4),
                                                                      os.path.basename(now.path))


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
        with urllib.request.urlopen(line.split()[2], timeout=60) as res:  # raises unless it answers 200
            page = res.read().decode("utf-8")
        assert "<script>" in page
        assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err.strip() == "notes.explore: stopped"


@pytest.mark.parametrize("args,words", [
    (["--out-root", "{empty}", "--port", "0"], ["no trained run in", "python bigram_v1.py"]),
    (["--run", "{empty}", "--port", "0"], ["no checkpoint in", "--run"]),
    (["--out-root", "{out}", "--port", "{port}"], ["cannot listen on 127.0.0.1:{port}", "--port 0"]),
])
def test_the_command_that_cannot_serve_says_why_in_one_line(tmp_path, out_root, server, capsys, args, words):
    where = dict(empty=tmp_path, out=out_root, port=server.server_port)  # the port the module's server holds
    code = explore.main([*(a.format(**where) for a in args), "--no-browser"])
    one_line_error(code, capsys.readouterr().err, *(w.format(**where) for w in words))


# ----------------------------------------------------------------------------------------------------
# the page, in a real browser


@pytest.fixture
def page():
    """Headless Chromium driven by Selenium, or a skip that says what to install."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium is not installed; for the browser test: "
                                                                  f"{INSTALL}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium or not shutil.which("chromedriver"):
        pytest.skip(f"no chromium and chromedriver on PATH; for the browser test: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    # chromedriver from PATH, not Selenium Manager: it would download one
    d = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # a 1200 x 900 page, whatever the window
                      {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    yield d
    d.quit()


def test_the_page_shows_the_models_numbers_in_a_real_browser(page, server, runs):
    from selenium.webdriver import ActionChains, Keys
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d, wait, run = page, WebDriverWait(page, 60), runs["gpt"]

    def type_into(name, text):
        d.find_element(By.ID, name).send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
        d.find_element(By.ID, name).send_keys(text)

    def check_bars(temperature, top_k):  # once drawn for these settings: the API's bars, to the page's 3 decimals
        want = json.dumps([PROMPT, temperature, top_k], separators=(",", ":"))
        wait.until(lambda d: d.find_element(By.ID, "bars").get_attribute("data-for") == want)
        bars = d.find_elements(By.CSS_SELECTOR, "#bars .bar")
        body = get(server, "/api/predict", run="gpt", prompt=PROMPT, temperature=temperature, top_k=top_k)
        assert [b.get_attribute("data-char") for b in bars] == [c["char"] for c in body["next"]]
        shown = [[float(b.find_element(By.CLASS_NAME, "p").text),
                  float(b.find_element(By.CLASS_NAME, "raw").text.removeprefix("raw "))] for b in bars]
        assert_close(torch.tensor(shown), torch.tensor([[c["p"], c["raw"]] for c in body["next"]]), atol=5e-4, rtol=0)

    # load: the gpt run, its step and val loss in the header
    d.get(f"http://127.0.0.1:{server.server_port}/")
    wait.until(lambda d: d.find_element(By.ID, "bars").get_attribute("data-for"))
    header = d.find_element(By.ID, "runinfo").text
    assert header.startswith(f"gpt · step {run.step} ·") and f"val loss {run.val:.4f}" in header, header

    # type a prompt; read the bars
    type_into("prompt", PROMPT)
    check_bars("1", "0")

    # hover a head, the last of the last layer (not the one shown first): the row of the prompt's 6th character
    weights = explore.attention(run.model, "gpt", torch.tensor([run.tok.encode(PROMPT)]))  # [(n_head, T, T)]
    layer, head, q = len(weights) - 1, weights[0].size(0) - 1, 5
    hover = f'svg.heat[data-layer="{layer}"][data-head="{head}"] rect[data-q="{q}"][data-k="2"]'  # redrawn often
    ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, hover)).perform()
    looks = d.find_element(By.ID, "looks")
    wait.until(lambda d: (looks.get_attribute("data-layer"), looks.get_attribute("data-head"),
                          looks.get_attribute("data-q")) == (str(layer), str(head), str(q)))
    shown = [s.text for s in looks.find_elements(By.CSS_SELECTOR, ".chars .w")]
    assert shown[q + 1 :] == ["masked"] * (len(PROMPT) - q - 1)  # the future
    row = torch.tensor([float(t) for t in shown[: q + 1]], dtype=torch.float64)
    assert_close(row, weights[layer][head, q, : q + 1].double(), atol=0.0005, rtol=0)
    # no square of any heat map lies in the future; the future is one masked shape per head
    maps = len(weights) * weights[0].size(0)
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.heat rect.cell")) == maps * len(PROMPT) * (len(PROMPT) + 1) // 2
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.heat path.masked")) == maps

    # move the temperature (the slider's arrow keys: 0.05 a press) and set top-k
    d.find_element(By.ID, "temperature").send_keys(*[Keys.ARROW_LEFT] * 6)
    type_into("topk", "5")
    check_bars("0.7", "5")
    assert d.find_element(By.ID, "tempout").text == "0.70"

    # sample with a seed: the page shows the sampler's own text
    type_into("n", "60")
    type_into("seed", "123")
    d.find_element(By.ID, "go").click()
    wait.until(lambda d: "seed 123" in d.find_element(By.ID, "samplestate").text)
    drawn = d.execute_script("return document.getElementById('drawn').textContent")
    assert drawn == drawn_text(run, 60, 0.7, 5, seed=123)
    assert d.find_element(By.ID, "error").text == ""

    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert severe == []  # no script error on the page
    if os.environ.get("UPDATE_SCREENSHOT"):  # the README's picture: UPDATE_SCREENSHOT=1 python -m pytest -k browser
        ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, hover)).perform()
        d.save_screenshot(str(REPO_ROOT / "notes" / "img" / "explorer.png"))
