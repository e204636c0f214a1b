# swarm-utils: one replica on a swarm manager, with /var/run/docker.sock and a volume at /data.
#   docker build --build-arg VERSION=1.0.0 --build-arg REVISION=$(git rev-parse HEAD) -t registry.example.com/swarm-utils:1.0.0 .
# VERSION defaults to package.json's; both end up in build-info.json, GET /healthz and the first log line.
FROM node:24-bookworm-slim AS build
WORKDIR /app
# a native addon without a prebuilt binary for the platform compiles from source (better-sqlite3 13
# ships Node-API binaries for linux x64/arm64, glibc and musl)
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev
ARG VERSION=
ARG REVISION=
RUN node scripts/build-info.mjs "$VERSION" "$REVISION" > build-info.json && cat build-info.json

FROM node:24-bookworm-slim
WORKDIR /app
# the image's default database path (README "Configuration"); a checkout defaults to ./data/swarm-utils.db
ENV NODE_ENV=production \
    SWARM_UTILS_DB_PATH=/data/swarm-utils.db
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/build-info.json ./
COPY package.json ./
COPY migrations ./migrations
# the web console's static files (served from public/ beside dist/)
COPY public ./public
# the command-line client on PATH: docker exec <container> swarm-utils jobs ls (docs/cli.md)
RUN printf '#!/bin/sh\nexec node /app/dist/cli/main.js "$@"\n' > /usr/local/bin/swarm-utils && chmod 755 /usr/local/bin/swarm-utils
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD node -e "fetch('http://127.0.0.1:'+(process.env.SWARM_UTILS_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/main.js"]
