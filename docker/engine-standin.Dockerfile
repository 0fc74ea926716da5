# The stand-in Engine as an image: `make images` builds the static binary once (CGO off) and one
# image per catalog version from this file, which differ only by ENGINE_VERSION. No base image and
# no registry are involved. The image keeps the Engine's container contract: port 8000, the brain
# at /data/brain.sqlite (a directory per engine, bind-mounted by the control plane's docker runtime).
FROM scratch
ARG ENGINE_VERSION
COPY engine-standin /engine-standin
ENV ENGINE_VERSION=${ENGINE_VERSION} \
    ENGINE_LISTEN_HOST=0.0.0.0 \
    PORT=8000 \
    SQLITE_DB_PATH=/data/brain.sqlite
LABEL io.septemberai.engine.version=${ENGINE_VERSION}
EXPOSE 8000
ENTRYPOINT ["/engine-standin"]
