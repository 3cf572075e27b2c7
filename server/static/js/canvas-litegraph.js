// The only module that imports the canvas library (@comfyorg/litegraph): its library-wide settings, the graph and
// the canvas that draws it, node type registration and creation, and the few library details (sizes, shapes, slot
// options, slot layout, the links table) the other canvas modules need.

import {
  LGraph, LGraphBadge, LGraphCanvas, LGraphGroup, LGraphNode, LiteGraph, RenderShape,
} from "../node_modules/@comfyorg/litegraph/dist/litegraph.es.js";
import { colourOf, GRAPH_INPUT_TYPES, linkAllowed } from "./types.js";

export const INPUT_TYPE = "nodeforge/graph input";
export const OUTPUT_TYPE = "nodeforge/graph output";
export const UNKNOWN_TYPE = "nodeforge/unknown";
/** The `kind` the library gives onConnectionsChange for an input slot. */
export const SLOT_INPUT = 1;
/** The socket shape of list inputs and list outputs. */
export const GRID_SHAPE = RenderShape.GRID;

/** A graph and the canvas that draws it on `element`, with the editor's look. */
export function createCanvas(element) {
  configureLibrary();
  const graph = new LGraph();
  const canvas = new LGraphCanvas(element, graph, { skip_render: false });
  canvas.allow_searchbox = false;
  canvas.render_canvas_border = false;
  canvas.show_info = false;
  canvas.links_render_mode = LiteGraph.SPLINE_LINK;
  canvas.default_connection_color_byType = Object.fromEntries(GRAPH_INPUT_TYPES.map((t) => [t, colourOf(t)]));
  canvas.default_connection_color_byTypeOff = canvas.default_connection_color_byType;
  return { graph, canvas };
}

/**
 * One node type per catalogue entry, plus graph inputs, graph outputs and unknown types. `setUp` builds each new
 * node: `setUp.node(node, entry)`, `setUp.input(node)`, `setUp.output(node)`.
 */
export function registerNodeTypes(entries, setUp) {
  for (const entry of entries) {
    class CatalogueNode extends LGraphNode {
      constructor(title) {
        super(title ?? entry.type);
        setUp.node(this, entry);
      }
    }
    CatalogueNode.title = entry.title;
    LiteGraph.registerNodeType(catalogueType(entry), CatalogueNode);
  }
  class GraphInputNode extends LGraphNode {
    constructor(title) {
      super(title ?? "input");
      setUp.input(this);
    }
  }
  class GraphOutputNode extends LGraphNode {
    constructor(title) {
      super(title ?? "output");
      setUp.output(this);
    }
  }
  class UnknownNode extends LGraphNode {}
  LiteGraph.registerNodeType(INPUT_TYPE, GraphInputNode);
  LiteGraph.registerNodeType(OUTPUT_TYPE, GraphOutputNode);
  LiteGraph.registerNodeType(UNKNOWN_TYPE, UnknownNode);
}

/** The registered type name of a catalogue entry. */
export function catalogueType(entry) {
  return `${entry.category}/${entry.type}`;
}

export function createNode(type) {
  return LiteGraph.createNode(type);
}

/** A group (a titled, coloured frame whose nodes move with it) over `bounding` [x, y, width, height]. */
export function createGroup(title, bounding, color = null) {
  const group = new LGraphGroup(title);
  group.configure({ id: group.id, title, bounding, color: color ?? group.color });
  return group;
}

export function badge(options) {
  return new LGraphBadge(options);
}

export function titleHeight() {
  return LiteGraph.NODE_TITLE_HEIGHT;
}

export function widgetHeight() {
  return LiteGraph.NODE_WIDGET_HEIGHT;
}

/** The slot options that colour a socket by its type. */
export function slotLook(type) {
  const colour = colourOf(type);
  return { color_on: colour, color_off: colour };
}

/** A link of `graph` by id. */
export function linkOf(graph, id) {
  return graph.links.get?.(id) ?? graph.links[id];
}

/** Lay out slots and widgets now (the library does it while drawing), so socket positions are right at once. */
export function arrange(node) {
  node._setConcreteSlots?.();
  node.arrange?.();
}

/** Move input `from` to position `to`, keeping the links' slot numbers right. */
export function moveInput(node, from, to) {
  if (from === to) return;
  const [slot] = node.inputs.splice(from, 1);
  node.inputs.splice(to, 0, slot);
  node.inputs.forEach((input, index) => {
    if (input.link == null || !node.graph?.links) return;
    const link = linkOf(node.graph, input.link);
    if (link) link.target_slot = index;
  });
  node._setConcreteSlots?.();
}

let configured = false;

/** Library-wide settings: our link rule, look, and no litegraph behaviour we do not use. */
function configureLibrary() {
  if (configured) return;
  configured = true;
  LiteGraph.isValidConnection = (a, b) => linkAllowed(a, b);
  LiteGraph.release_link_on_empty_shows_menu = false;
  LiteGraph.middle_click_slot_add_default_node = false;
  LiteGraph.dialog_close_on_mouse_leave = false;
  LiteGraph.alt_drag_do_clone_nodes = true;
  LiteGraph.NODE_DEFAULT_BGCOLOR = "#1e2126";
  LiteGraph.NODE_DEFAULT_COLOR = "#2b2f36";
  LiteGraph.NODE_TITLE_COLOR = "#e6edf3";
  LiteGraph.NODE_SELECTED_TITLE_COLOR = "#ffffff";
  LiteGraph.WIDGET_BGCOLOR = "#15181c";
  LiteGraph.WIDGET_OUTLINE_COLOR = "#3a3f48";
  LiteGraph.WIDGET_TEXT_COLOR = "#e6edf3";
  LiteGraph.WIDGET_SECONDARY_TEXT_COLOR = "#9aa4ae";
  for (const type of GRAPH_INPUT_TYPES) {
    LGraphCanvas.link_type_colors[type] = colourOf(type);
    LGraphCanvas.link_type_colors[`list[${type}]`] = colourOf(type);
  }
}
