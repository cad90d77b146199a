// Node-RED looks for a node's .html and icons/ beside the compiled .js: copy them there.
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.join(__dirname, "..");
const nodesSrc = path.join(root, "nodes");
const nodesOut = path.join(root, "dist", "nodes");

for (const dir of fs.readdirSync(nodesSrc, { withFileTypes: true })) {
  if (!dir.isDirectory()) continue;
  let hasHtml = false;
  for (const file of fs.readdirSync(path.join(nodesSrc, dir.name))) {
    if (!file.endsWith(".html")) continue;
    hasHtml = true;
    fs.mkdirSync(path.join(nodesOut, dir.name), { recursive: true });
    fs.copyFileSync(path.join(nodesSrc, dir.name, file), path.join(nodesOut, dir.name, file));
  }
  const icons = path.join(root, "icons");
  if (hasHtml && fs.existsSync(icons)) {
    fs.cpSync(icons, path.join(nodesOut, dir.name, "icons"), { recursive: true });
  }
}
