# Multi-stage build: a static binary (ops/build.sh, tested outside Docker
# too) in a minimal, non-root runtime image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION="${VERSION}" sh ops/build.sh /out/party-sockets

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/party-sockets /party-sockets
ENV PORT=3000
# Fits a 256 MB machine; fly.toml sets the same. The memory budget is a
# quarter of it (README "Limits and abuse").
ENV GOMEMLIMIT=200MiB
EXPOSE 3000
USER nonroot:nonroot
ENTRYPOINT ["/party-sockets"]
