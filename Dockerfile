# The Streamlit demo for Hugging Face Spaces (sdk: docker, app_port: 8501) or any Docker host.
# Space variables: AUTOSPECNET_MODEL (a Hub repo "owner/name@rev" or a folder; default: the bundled
# model) and HF_TOKEN (a secret, for a private model repo). The model must ship model.onnx: the image
# serves on ONNX Runtime and has no torch.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/home/user \
    HF_HOME=/home/user/.cache/huggingface \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

# Spaces run containers as user 1000.
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

COPY requirements-serve.txt .
RUN pip install --no-cache-dir -r requirements-serve.txt

COPY --chown=user . .
USER 1000
# The car finder is downloaded (pinned URL, sha256 checked) while the image is built, never at start.
RUN python -c "from autospecnet.finder import finder_path; print(finder_path())"

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0"]
