# The worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system --no-create-home stockworker
USER stockworker
ENTRYPOINT ["stockworker"]
CMD ["worker"]
