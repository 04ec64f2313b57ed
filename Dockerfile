# syntax=docker/dockerfile:1

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# docker build --build-arg VERSION=$(git describe --tags --always) .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/syncd ./cmd/syncd
# Pre-create the data dir so a fresh volume is writable by the nonroot user.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/syncd /syncd
COPY --from=build --chown=65532:65532 /out/data /data
ENV SYNCD_DATA_DIR=/data HTTP_ADDR=:8080 LOG_FORMAT=json
VOLUME /data
EXPOSE 8080
# No shell in the image: syncd itself asks its /readyz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/syncd", "healthcheck"]
ENTRYPOINT ["/syncd"]
CMD ["serve"]
