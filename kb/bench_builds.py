"""`kb bench`'s libraries, index builds and encoders: the library measured (the shipped one, or a synthetic one
generated into the scratch folder), its bench data folder per engine made ready (embedding cache seeded from what
is at hand, then an incremental build), the build measures, and what embeds a synthetic library.

Synthetic libraries (up to 100,000 sections) are embedded texts shortest first (:class:`LengthSorted`) by the
faster of torch and fp32 ONNX, as measured on RATE_SECTIONS synthetic sections when builds are measured (ONNX
when they are not). Both give the same vectors (least cosine >= 0.9999, recorded), so the index and every search
figure are a torch build's; only build times depend on the choice, and their rows name the encoder. The shipped
library is embedded by the builder's own torch encoder: its cold build is what `kb index --full` takes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kb.bench_record import Record
from kb.config import load_settings

if TYPE_CHECKING:
    import numpy as np

CACHE_FILES = ("models", "embeddings.sqlite")
ENCODERS = ("torch", "onnx")  # what may embed a synthetic library, the faster measured doing it
SYNTHETIC_ENCODER = "onnx"  # used when builds are not measured (fp32 ONNX measured faster than torch here)
RATE_SECTIONS = 500  # synthetic sections each encoder embeds to measure its rate
RATE_ROUNDS = 5  # slices of them, each embedded by every encoder in turn
ONNX_THREADS = 2  # ONNX Runtime intra-op threads of a synthetic build (the bench has the machine)


class LengthSorted:
    """An encoder that embeds texts shortest first and returns their vectors in the order given.

    A batch is padded to its longest text; texts of like length in one batch pad little, which halves the time
    of a synthetic library's embedding here. Padding changes no vector (the attention mask and mean pooling leave
    padded tokens out): the vectors are the inner encoder's to float rounding.
    """

    def __init__(self, inner, label: str):
        """
        Args:
            inner: an encoder (.encode(texts, progress) -> unit float32 vectors).
            label: what the report calls it.
        """
        self.inner, self.label = inner, label
        self.kind = getattr(inner, "kind", "encoder")

    def encode(self, texts, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed texts into unit vectors (row i for texts[i]), calling progress(n) as batches finish."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = self.inner.encode([texts[i] for i in order], progress)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def make_encoder(kind: str, data_dir: Path, model: str) -> LengthSorted:
    """A synthetic build's encoder: "torch" (the builder's, loaded once per process) or "onnx" (fp32, ONNX_THREADS
    threads, from data_dir's export, made first if missing), embedding texts shortest first.

    Raises:
        ValueError: an unknown kind.
        IndexError_: the ONNX export had to be made and differs from torch.
    """
    from kb.indexing import embeddings, query_encoder

    if kind == "torch":
        return LengthSorted(embeddings.torch_encoder(model), "torch, length-sorted batches")
    if kind == "onnx":
        folder = query_encoder.ensure_onnx(data_dir, model)
        encoder = embeddings.OnnxEncoder(folder, threads=ONNX_THREADS)
        return LengthSorted(encoder, f"onnx fp32, {ONNX_THREADS} threads, length-sorted batches")
    raise ValueError(f"unknown encoder {kind!r}: choose from {', '.join(ENCODERS)}")


class Builds:
    """A bench run's library and its data folders: call library() first, then ready(engine) per engine."""

    def __init__(self, settings: dict, scratch: Path, synthetic: int | None, record: Record, say):
        """
        Args:
            settings: the instance's settings (its content is the shipped library; its data folder has the model).
            scratch: the bench's work folder.
            synthetic: the sections of a synthetic library, or None for the shipped one.
            record: where the rows go.
            say: writes a line for the person running the bench.
        """
        self.settings, self.scratch, self.synthetic, self.record, self.say = settings, scratch, synthetic, record, say
        self.folder, self.content = scratch, settings["CONTENT_DIR"]
        self.documents: int | None = None
        self.encoder_kind = SYNTHETIC_ENCODER  # a synthetic library's encoder, until the rates say otherwise
        self.encoder: LengthSorted | None = None
        self.embedded_by: dict[str, int] = {}  # encoder label -> sections it embedded in this run's builds

    def library(self) -> None:
        """Choose the library's scratch folder and content folder: the shipped library, or a synthetic one
        (generated, or reused when the scratch folder holds it)."""
        from kb.synthetic import generate

        source = self.settings["CONTENT_DIR"]
        if not self.synthetic:
            self.folder, self.content = self.scratch / "shipped", source
            return
        folder = self.scratch / f"synthetic-{self.synthetic}"
        library = generate(self.synthetic, source, folder / "repo", progress=self.record.progress)
        self.say(f"synthetic library {'written' if library.generated else 'reused'}: {library.content}")
        self.folder, self.content = folder, library.content

    def settings_for(self, engine: str, content: Path, data: Path) -> dict:
        """The settings of a kb over content and data with engine (the environment's settings beside)."""
        return load_settings({"CONTENT_DIR": content, "DATA_DIR": data, "KEYWORD_ENGINE": engine})

    def synthetic_encoder(self) -> LengthSorted | None:
        """What embeds new sections of the library: None (the builder's torch) for the shipped one, else the
        synthetic encoder (made on first use)."""
        if not self.synthetic:
            return None
        if self.encoder is None:
            self.encoder = make_encoder(self.encoder_kind, self.settings["DATA_DIR"], self.settings["EMBEDDING_MODEL"])
        return self.encoder

    def build(self, engine: str, content: Path, data: Path, full: bool):
        """Build content's index into data (full or incremental) with the library's encoder; its BuildReport."""
        from kb.indexing.builder import build_index

        model, encoder = self.settings["EMBEDDING_MODEL"], self.synthetic_encoder()
        if encoder is not None:
            self.copy_export(data)
        report = build_index(
            content, data, model, full=full, progress=self.record.progress, engine=engine, encoder=encoder
        )
        if report.embedded:
            label = encoder.label if encoder else "torch"
            self.embedded_by[label] = self.embedded_by.get(label, 0) + report.embedded
        if report.skipped:
            self.say(f"warning: {len(report.skipped)} document(s) skipped, e.g. {report.skipped[0]}")
        return report

    def copy_export(self, target: Path) -> None:
        """Give a data folder the instance's ONNX export (a synthetic build's encoder runs it; the builder would
        otherwise load torch to export the model again)."""
        from kb.indexing import embeddings

        model = self.settings["EMBEDDING_MODEL"]
        source, folder = embeddings.onnx_folder(self.settings["DATA_DIR"], model), embeddings.onnx_folder(target, model)
        if (source / "meta.json").is_file() and not (folder / "meta.json").exists():
            shutil.copytree(source, folder, dirs_exist_ok=True)

    def seed(self, target: Path) -> None:
        """Copy the exported model and the embedding cache into target from a folder that has them."""
        if (target / "embeddings.sqlite").exists():
            return
        candidates = sorted(self.folder.glob("data-*")) + sorted(self.folder.glob("build-*"))
        for source in [*candidates, self.settings["DATA_DIR"]]:
            if source != target and (source / "embeddings.sqlite").exists():
                target.mkdir(parents=True, exist_ok=True)
                for name in CACHE_FILES:
                    if (source / name).is_dir():
                        shutil.copytree(source / name, target / name, dirs_exist_ok=True)
                    elif (source / name).exists():
                        shutil.copy2(source / name, target / name)
                self.say(f"embedding cache and model copied from {source}")
                return

    def ready(self, engine: str) -> Path:
        """The library's bench data folder for engine, indexed and up to date."""
        data = self.folder / f"data-{engine}"
        self.seed(data)
        started = time.perf_counter()
        report = self.build(engine, self.content, data, full=False)
        self.record.sections, self.documents = report.sections, report.documents
        self.say(f"{engine} index ready in {data}: {report.sections} sections ({time.perf_counter() - started:.1f} s)")
        return data

    def rates(self) -> None:
        """Embed RATE_SECTIONS synthetic sections with each of ENCODERS; synthetic builds use the faster.

        Each encoder is loaded and warmed on one batch first (its load time is recorded apart). The sections go
        in RATE_ROUNDS slices, each embedded by every encoder in turn, so that a change in the machine's load
        falls on all of them alike. The rows after the first record the least cosine of their vectors to the
        first encoder's (torch).
        """
        import numpy as np

        from kb.synthetic import sample_texts

        texts = sample_texts(min(RATE_SECTIONS, self.synthetic), self.settings["CONTENT_DIR"])
        made, loaded = {}, {}
        for kind in ENCODERS:
            started = time.perf_counter()
            made[kind] = make_encoder(kind, self.settings["DATA_DIR"], self.settings["EMBEDDING_MODEL"])
            made[kind].encode(texts[:32])
            loaded[kind] = time.perf_counter() - started
        seconds, vectors = dict.fromkeys(ENCODERS, 0.0), {kind: [] for kind in ENCODERS}
        label, total = f"embedding rates, {' and '.join(ENCODERS)}", len(texts) * len(ENCODERS)
        tick = self.record.progress(label, total, 0) if self.record.progress else None
        size = -(-len(texts) // RATE_ROUNDS)
        for start in range(0, len(texts), size):
            for kind in ENCODERS:
                started = time.perf_counter()
                vectors[kind].append(made[kind].encode(texts[start : start + size], tick))
                seconds[kind] += time.perf_counter() - started
        rates = {kind: len(texts) / seconds[kind] for kind in ENCODERS}
        first = np.vstack(vectors[ENCODERS[0]])
        for kind in ENCODERS:
            figures = {
                "encoder": made[kind].label,
                "seconds": round(seconds[kind], 3),
                "load_s": round(loaded[kind], 3),
            }
            figures.update(sections_per_s=round(rates[kind], 1), sections=len(texts), rounds=RATE_ROUNDS)
            if kind != ENCODERS[0]:
                cosine = (np.vstack(vectors[kind]) * first).sum(axis=1).min()
                figures[f"min_cosine_to_{ENCODERS[0]}"] = round(float(cosine), 6)
            self.record.add("build", f"embedding rate, {len(texts)} synthetic sections", None, **figures)
        self.encoder_kind = max(rates, key=rates.get)
        self.encoder = made[self.encoder_kind]
        shown = ", ".join(f"{kind} {rate:.1f}/s" for kind, rate in rates.items())
        self.say(f"synthetic builds embed with {self.encoder_kind} ({shown})")

    def builds(self, engine: str) -> None:
        """Cold full, warm full and no-change incremental builds in a scratch data folder, a row each."""
        folder = self.folder / f"build-{engine}"
        shutil.rmtree(folder, ignore_errors=True)
        encoder = self.synthetic_encoder()
        label = encoder.label if encoder else "torch"
        if encoder:
            self.copy_export(folder)  # the model export is the encoder's, not part of a synthetic build's time
        try:
            for name, full in (
                ("cold full build (empty embedding cache)", True),
                ("warm full build (embedding cache warm)", True),
                ("no-change incremental build", False),
            ):
                if encoder:
                    name = f"{name}, {encoder.kind} encoder"
                self.say(f"{engine}: {name}")
                started = time.perf_counter()
                report = self.build(engine, self.content, folder, full)
                self.record.sections, self.documents = report.sections, report.documents
                seconds = round(time.perf_counter() - started, 3)
                figures = {"seconds": seconds, "documents": report.documents, "embedded": report.embedded}
                if report.embedded:
                    figures["embedded_per_s"] = round(report.embedded / seconds, 1)
                self.record.add("build", name, engine, encoder=label, **figures)
            self.seed(self.folder / f"data-{engine}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
