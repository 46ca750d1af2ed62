# One image for both services; compose picks the entry point.
# Node 20 only: uWebSockets.js ships native builds up to Node 20 (see STACK notes).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY shared ./shared
COPY lua ./lua
COPY waiting-room ./waiting-room
COPY checkout ./checkout
COPY scripts ./scripts
USER node
# tsx runs the TypeScript sources directly (a runtime dependency).
CMD ["npx", "tsx", "scripts/gateway.ts"]
