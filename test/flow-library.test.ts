/**
 * The Node-RED flow library's documented package rules (what `node-red-dev validate` checks),
 * applied to the package and its editor HTML.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

const root = path.resolve(__dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
const nodes = pkg["node-red"].nodes as Record<string, string>;

function exampleFlows(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? exampleFlows(path.join(dir, e.name)) : e.name.endsWith(".json") ? [path.join(dir, e.name)] : [],
  );
}

describe("the flow library's package rules", function () {
  it("package.json: name node-red-contrib-*, keyword node-red, a licence with its file, node-red.version, a node-red-free dependency list", function () {
    assert.match(pkg.name, /^node-red-contrib-[a-z0-9-]+$/);
    assert.ok(pkg.keywords.includes("node-red"), "keyword node-red");
    assert.ok(pkg.license && fs.existsSync(path.join(root, "LICENSE")), "licence and LICENSE file");
    assert.ok(pkg["node-red"].version, "node-red.version states the supported Node-RED");
    assert.equal(Object.keys(nodes).length, 9, "the nine node types, so the checks below that go over them check something");
    assert.ok(!("node-red" in (pkg.dependencies ?? {})), "node-red is not a runtime dependency");
    assert.ok(pkg.files.includes("examples/") && pkg.files.includes("icons/"));
    assert.ok(fs.readFileSync(path.join(root, "README.md"), "utf8").length > 500, "a README");
  });

  it("every node file's HTML registers its type with a literal registerType, a category of ours, an existing icon and help with Inputs/Outputs/Details", function () {
    for (const [type, js] of Object.entries(nodes)) {
      const src = path.join(root, js.replace(/^dist\//, "").replace(/\.js$/, ".html"));
      const html = fs.readFileSync(src, "utf8");
      assert.match(html, new RegExp(`RED\\.nodes\\.registerType\\(\\s*'${type}'`), `${type}: literal registerType in ${src}`);
      assert.match(html, new RegExp(`data-template-name="${type}"`), `${type}: edit template`);
      assert.match(html, new RegExp(`data-help-name="${type}"`), `${type}: help`);
      const category = /category:\s*'([^']+)'/.exec(html)?.[1];
      assert.ok(category === "config" || category === "tick backup", `${type}: category ${category}`);
      const icon = /icon:\s*'([^']+)'/.exec(html)?.[1];
      if (category !== "config") {
        assert.ok(icon, `${type}: an icon`);
        assert.ok(fs.existsSync(path.join(root, "icons", icon!)), `${type}: icons/${icon} exists`);
      }
      const help = html.slice(html.indexOf(`data-help-name="${type}"`));
      assert.match(help, /<h3>Inputs<\/h3>[\s\S]*<h3>Outputs<\/h3>[\s\S]*<h3>Details<\/h3>/, `${type}: help sections`);
      const ts = fs.readFileSync(path.join(root, js.replace(/^dist\//, "").replace(/\.js$/, ".ts")), "utf8");
      assert.match(ts, new RegExp(`registerType[^(]*\\(\\s*"${type}"`), `${type}: the runtime registers the same type`);
    }
  });

  it("every node type is used in an example flow", function () {
    const used = new Set(exampleFlows(path.join(root, "examples")).flatMap((f) => (JSON.parse(fs.readFileSync(f, "utf8")) as { type: string }[]).map((n) => n.type)));
    for (const type of Object.keys(nodes)) assert.ok(used.has(type), `${type} appears in examples/`);
  });
});
