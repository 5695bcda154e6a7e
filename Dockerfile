# The sweetspot image: `sweetspot` is the entry point (worker, run, export, ...).
# Build: docker build -t sweetspot .    For a CPU-only image, point pip at a CPU wheel index of
# PyTorch with --build-arg PIP_EXTRA_INDEX_URL=... (the default installs PyTorch's CUDA wheels).
FROM python:3.11-slim
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sweetspot ./sweetspot
COPY studies ./studies
RUN pip install '.[postgres]'
ENTRYPOINT ["sweetspot"]
CMD ["worker", "studies/digits.yaml"]
