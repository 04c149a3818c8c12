//! The factory as a picture: the chain of transactions from the shared coin down to this
//! wallet's leaf (its way out, highlighted), with the other members' branches folded.

use leptos::prelude::*;
use wallet::picture::{NodeStatus, PictureNode};

const WIDTH: i32 = 320;
const ROW: i32 = 64;
const BOX_W: i32 = 196;
const BOX_H: i32 = 44;

/// An SVG of `nodes` (top: the on-chain coin; bottom: this wallet's leaf).
#[component]
pub fn FactoryTree(nodes: Vec<PictureNode>) -> impl IntoView {
    let height = ROW * nodes.len() as i32 + 8;
    let x = 8;
    let boxes = nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            let y = 4 + ROW * i as i32;
            let status = match node.status {
                NodeStatus::Signed => "signed",
                NodeStatus::Confirmed => "confirmed",
                NodeStatus::Next => "next",
            };
            let link = (i > 0).then(|| {
                view! {
                    <line class="path-link" x1=x + BOX_W / 2 y1=y - (ROW - BOX_H) x2=x + BOX_W / 2 y2=y />
                }
            });
            let others = (node.others > 0).then(|| {
                let bx = x + BOX_W + 16;
                view! {
                    <line class="branch" x1=x + BOX_W y1=y + BOX_H / 2 x2=bx y2=y + BOX_H / 2 />
                    <text class="others" x=bx + 4 y=y + BOX_H / 2 + 4>
                        {format!("+{} other{}", node.others, if node.others == 1 { "" } else { "s" })}
                    </text>
                }
            });
            view! {
                {link}
                <g class=format!("tree-node {status}") data-txid=node.txid.to_string()>
                    <title>{format!("{} {}", node.label, node.txid)}</title>
                    <rect x=x y=y width=BOX_W height=BOX_H rx="8" />
                    <text class="label" x=x + 10 y=y + 18 textLength=fit(&node.label, 6.2) lengthAdjust="spacingAndGlyphs">{node.label.clone()}</text>
                    <text class="detail" x=x + 10 y=y + 35 textLength=fit(&node.detail, 5.6) lengthAdjust="spacingAndGlyphs">{node.detail.clone()}</text>
                </g>
                {others}
            }
        })
        .collect_view();
    view! {
        <svg id="factory-tree" class="tree" viewBox=format!("0 0 {WIDTH} {height}")
            width="100%" role="img" aria-label="Your way out of the factory">
            {boxes}
        </svg>
        <p class="hint legend">
            <span class="key signed">"signed, kept in this browser"</span>" "
            <span class="key confirmed">"on chain"</span>" "
            <span class="key next">"next to broadcast if you leave"</span>
        </p>
    }
}

/// A `textLength` that squeezes `text` into the box when, at about `per_char` pixels a
/// character, it would not fit; `None` (natural width) otherwise.
fn fit(text: &str, per_char: f64) -> Option<String> {
    let room = f64::from(BOX_W - 20);
    (text.chars().count() as f64 * per_char > room).then(|| room.to_string())
}
