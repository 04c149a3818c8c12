//! A wallet driven by hand over a raw WebSocket: the client side of one leaf channel (the shared
//! channel state machine, as the real wallet runs it), whose every frame the test sees and may
//! hold back, alter or replace.

use bitcoin::absolute::Height;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::Keypair;
use bitcoin::{Amount, Network};
use shared::channel::keys::ChannelSecrets;
use shared::channel::{Action, Channel, ChannelEvent, ChannelMsg, CommitmentSpec, Side};
use shared::leaf::LeafEpoch;
use shared::pay::policy::channel_seed;
use shared::pay::policy::route_fee;
use shared::pay::{
    leaf_channel_params, ChannelFrame, ChannelId, ChannelOpen, ChannelPolicy, InvoiceRequest,
    JoinFee, ParsedInvoice, PayOutcome, PayRequest,
};
use shared::types::Now;
use shared::wire::WireMsg;

use lsp_server::PaymentOptions;
use shared::terms::FeeSchedule;
use wallet::pay::MemoryPayStore;

use super::pay::Payer;
use super::raw::{self, Ws};
use super::swarm::{ClientRun, ClientSpec};
use super::Stack;

/// The client side of one channel, on its own connection.
pub struct Puppet {
    pub ws: Ws,
    pub id: ChannelId,
    pub channel: Channel,
    /// The leaf state `channel` lives on.
    pub leaf: LeafEpoch,
    pub keys: Keypair,
    /// Frames the channel machine wants sent, held until [`Puppet::send_held`].
    pub held: Vec<ChannelMsg>,
    /// Messages received that were not channel frames (errors, pay results, …).
    pub other: Vec<WireMsg>,
    /// What the channel owes for its join, as the wallet tracks it (`pay_puppet` updates it).
    pub join_fee: JoinFee,
    esplora: String,
}

/// What the wallet sends at open for this leaf (as `wallet::pay` does).
pub fn client_open(id: ChannelId, run: &ClientRun, next_update: u64) -> ChannelOpen {
    let secrets =
        ChannelSecrets::from_seed(&channel_seed(&run.factory_secret, id, LeafEpoch::FIRST));
    ChannelOpen {
        next_update,
        ..ChannelOpen::new(id, LeafEpoch::FIRST, &secrets)
    }
}

impl Puppet {
    /// Connects as `run`'s wallet, opens its channel and completes round 0.
    pub async fn open(stack: &Stack, run: &ClientRun) -> Puppet {
        let leaf = super::pay::leaf_of(run);
        let id = leaf.channel;
        let (mut ws, _) = raw::connect_as(&stack.ws_url(), &run.keys).await;
        raw::send(
            &mut ws,
            WireMsg::ChannelOpen(Box::new(client_open(id, run, 0))),
        )
        .await;
        let lsp_open = loop {
            match raw::recv(&mut ws).await {
                WireMsg::ChannelOpen(open) => break *open,
                // The factory's last ceremony frame, replayed on every authentication.
                WireMsg::FundingBroadcast(_) => continue,
                other => panic!("expected the LSP's channel_open, got {other:?}"),
            }
        };
        let policy = ChannelPolicy::for_network(Network::Regtest);
        let params = leaf_channel_params(&leaf.path, &policy).expect("leaf params");
        let spec = CommitmentSpec {
            lsp_balance: params.funding_output.value,
            client_balance: Amount::ZERO,
            htlcs: Vec::new(),
            feerate: lsp_open.feerate.expect("the LSP names the fee rate"),
        };
        let channel = Channel::new(
            Side::Client,
            params,
            run.factory_secret,
            &channel_seed(&run.factory_secret, id, LeafEpoch::FIRST),
            lsp_open.peer_info(),
            spec,
        )
        .expect("client channel");
        let mut puppet = Puppet {
            ws,
            id,
            channel,
            leaf: LeafEpoch::FIRST,
            keys: run.keys,
            held: Vec::new(),
            other: Vec::new(),
            join_fee: JoinFee::owed(super::pay::join_fee_of(run)),
            esplora: stack.devnet.esplora_url().to_string(),
        };
        puppet.commit().await;
        puppet
    }

    /// Now, as the channel machine wants it.
    pub async fn now(&self) -> Now {
        let height: u32 = reqwest::get(format!("{}/blocks/tip/height", self.esplora))
            .await
            .expect("esplora")
            .text()
            .await
            .expect("height")
            .trim()
            .parse()
            .expect("a height");
        Now {
            height: Height::from_consensus(height).expect("height"),
            unix_time: wallet::platform::unix_now(),
        }
    }

    /// Receives one message; a channel frame of the live leaf state goes to the machine, whose
    /// frames are held (anything else goes to `other`).
    /// Returns the channel message (if it was one) and the committed number (if a round ended).
    pub async fn step(&mut self) -> (Option<ChannelMsg>, Option<u64>) {
        match raw::recv(&mut self.ws).await {
            WireMsg::Channel(frame) if frame.leaf == self.leaf => {
                assert_eq!(frame.channel, self.id, "frames only for this channel");
                let now = self.now().await;
                self.channel
                    .handle_message(now, frame.msg.clone(), &mut rand::thread_rng())
                    .expect("the LSP's channel messages are valid");
                let committed = self.drain();
                (Some(frame.msg), committed)
            }
            other => {
                self.other.push(other);
                (None, None)
            }
        }
    }

    /// Moves the machine's actions out: frames to `held`; returns a committed number if any.
    pub fn drain(&mut self) -> Option<u64> {
        let mut committed = None;
        while let Some(action) = self.channel.poll_action() {
            match action {
                Action::Send(msg) => self.held.push(msg),
                Action::Emit(ChannelEvent::Committed { number }) => committed = Some(number),
                Action::Persist(_) | Action::Emit(_) | Action::Broadcast(_) => {}
            }
        }
        committed
    }

    /// Sends one channel message on this channel.
    pub async fn send_msg(&mut self, msg: ChannelMsg) {
        let frame = ChannelFrame {
            leaf: self.leaf,
            channel: self.id,
            msg,
        };
        raw::send(&mut self.ws, WireMsg::Channel(Box::new(frame))).await;
    }

    /// Sends every held frame, in order.
    pub async fn send_held(&mut self) {
        for msg in std::mem::take(&mut self.held) {
            self.send_msg(msg).await;
        }
    }

    /// Answers everything honestly until a round commits; returns its number.
    pub async fn commit(&mut self) -> u64 {
        loop {
            self.send_held().await;
            if let (_, Some(number)) = self.step().await {
                self.send_held().await;
                return number;
            }
        }
    }

    /// Receives (answering channel frames honestly) until `want` matches a non-channel message.
    pub async fn until_other(&mut self, want: impl Fn(&WireMsg) -> bool) -> WireMsg {
        loop {
            if let Some(i) = self.other.iter().position(&want) {
                return self.other.remove(i);
            }
            self.send_held().await;
            self.step().await;
        }
    }

    /// An invoice of this wallet's for `amount`, with its preimage.
    pub async fn invoice(&self, stack: &Stack, amount: Amount) -> (String, [u8; 32]) {
        let terms = super::terms(stack).await;
        let preimage: [u8; 32] = rand::random();
        let invoice = InvoiceRequest {
            amount,
            description: "puppet".into(),
            expiry_secs: 600,
            hash: sha256::Hash::hash(&preimage),
            secret: rand::random(),
            channel: self.id,
            lsp: terms.body.lsp_pubkey,
            fees: terms.body.fees,
            now_unix: wallet::platform::unix_now(),
        }
        .sign(
            Network::Regtest,
            &self.keys,
            &ChannelPolicy::for_network(Network::Regtest),
        )
        .expect("invoice");
        (invoice, preimage)
    }

    /// Answers honestly until the LSP's HTLC for `hash` is committed; returns it, with this
    /// side's answers to that round sent.
    pub async fn until_lsp_htlc(&mut self, hash: sha256::Hash) -> shared::channel::Htlc {
        let htlc = loop {
            let found = self
                .channel
                .spec()
                .htlcs
                .iter()
                .find(|h| h.offerer == Side::Lsp && h.hash == hash)
                .cloned();
            if let Some(h) = found {
                break h;
            }
            self.send_held().await;
            self.step().await;
        };
        self.send_held().await;
        htlc
    }

    /// Waits until the LSP's HTLC for `preimage`'s hash is committed, fulfills it, and returns
    /// with the fulfill sent (the LSP's round for it not answered yet).
    pub async fn fulfill(&mut self, preimage: [u8; 32]) {
        let htlc = self.until_lsp_htlc(sha256::Hash::hash(&preimage)).await.id;
        let now = self.now().await;
        self.channel
            .fulfill_htlc(now, htlc, preimage)
            .expect("fulfill");
        self.drain();
        self.send_held().await;
    }

    /// Starts paying `invoice` as the wallet does: adds its HTLC (invoice amount plus the
    /// routing fee, the payer's expiry) and sends `pay_request`; the HTLC goes out in the LSP's
    /// next round.
    pub async fn offer(&mut self, stack: &Stack, invoice: &str) -> Offered {
        let terms = super::terms(stack).await;
        let now = self.now().await;
        let parsed =
            ParsedInvoice::parse(invoice, Network::Regtest, now.unix_time).expect("invoice");
        let amount = parsed.amount + route_fee(&terms.body.fees, parsed.amount);
        let policy = ChannelPolicy::for_network(Network::Regtest);
        let expiry = Height::from_consensus(policy.payer_expiry(now.height.to_consensus_u32()))
            .expect("height");
        let htlc = self
            .channel
            .add_htlc(now, amount, parsed.hash, expiry)
            .expect("the puppet can afford it");
        let request = PayRequest {
            channel: self.id,
            htlc,
            invoice: invoice.into(),
        };
        raw::send(&mut self.ws, WireMsg::PayRequest(request)).await;
        self.drain();
        Offered {
            htlc,
            hash: parsed.hash,
            amount,
            expiry: expiry.to_consensus_u32(),
        }
    }

    /// Pays `invoice` ([`Puppet::offer`]), answering every round honestly until the LSP says
    /// how it ended.
    pub async fn pay(&mut self, stack: &Stack, invoice: &str) -> PayOutcome {
        let htlc = self.offer(stack, invoice).await.htlc;
        let channel = self.id;
        match self
            .until_other(
                |m| matches!(m, WireMsg::PayResult(r) if r.channel == channel && r.htlc == htlc),
            )
            .await
        {
            WireMsg::PayResult(result) => result.outcome,
            _ => unreachable!("matched above"),
        }
    }
}

/// An HTLC the puppet offered to pay an invoice.
pub struct Offered {
    /// Its id.
    pub htlc: u64,
    /// The invoice's payment hash.
    pub hash: sha256::Hash,
    /// What it carries: the invoice amount plus the routing fee.
    pub amount: Amount,
    /// Its expiry height.
    pub expiry: u32,
}

/// The clients of the puppet tests: 100,000-sat channels and as much liquidity.
pub fn spec() -> ClientSpec {
    ClientSpec {
        channel: Amount::from_sat(100_000),
        liquidity: Amount::from_sat(100_000),
        ..ClientSpec::honest()
    }
}

/// Wallet 0 pays the puppet `amount`; checks the puppet's balance moved by exactly that, less
/// the puppet's join fee if this payment pays it.
pub async fn pay_puppet(stack: &Stack, payer: &mut Payer, p: &mut Puppet, amount: u64) {
    let before = p.channel.spec().client_balance;
    let taken = p.join_fee.deduction(Amount::from_sat(amount));
    let (invoice, preimage) = p.invoice(stack, Amount::from_sat(amount)).await;
    let pay = {
        let handle = payer.handle.clone();
        tokio::spawn(async move { handle.pay(&invoice).await })
    };
    p.fulfill(preimage).await;
    p.commit().await;
    pay.await.unwrap().expect("the puppet is paid");
    assert_eq!(
        p.channel.spec().client_balance,
        before + Amount::from_sat(amount) - taken
    );
    if taken > Amount::ZERO {
        p.join_fee
            .pay(sha256::Hash::hash(&preimage))
            .expect("unpaid before");
    }
}

/// A funded factory of two: wallet 0 a running wallet with 50,000 faucet sats (less its join
/// fee), wallet 1 a puppet holding 5,000 paid by wallet 0 (less its join fee).
pub struct Setup {
    pub stack: Stack,
    pub runs: Vec<ClientRun>,
    pub payer: Payer,
    pub puppet: Puppet,
    pub fees: FeeSchedule,
    /// The join fee of each of the two (the same quote), taken from its first payment.
    pub join_fee: Amount,
    pub _storage: tempfile::TempDir,
}

/// Sets up a [`Setup`] with these payment options.
pub async fn setup(payments: PaymentOptions) -> Setup {
    setup_on(devnet::DevnetConfig::default(), payments).await
}

/// Sets up a [`Setup`] on a devnet started as `devnet` says.
pub async fn setup_on(devnet: devnet::DevnetConfig, payments: PaymentOptions) -> Setup {
    let stack = super::start_on(devnet, super::fast_factory(2, 2), payments, None).await;
    super::fund_lsp(&stack, Amount::from_sat(2_000_000)).await;
    let storage = tempfile::tempdir().expect("temp dir");
    let config = super::swarm_config(&stack, storage.path());
    let runs = super::pay::funded_factory(&stack, &config, spec(), 2).await;
    let mut payer = super::pay::start_payer(&stack, &runs[0], MemoryPayStore::default());
    payer.ready(30).await;
    let join_fee = super::pay::join_fee_of(&runs[0]);
    assert_eq!(join_fee, super::pay::join_fee_of(&runs[1]));
    let arrived = payer.faucet(Amount::from_sat(50_000), 30).await;
    assert_eq!(arrived, Amount::from_sat(50_000) - join_fee);
    let mut puppet = Puppet::open(&stack, &runs[1]).await;
    pay_puppet(&stack, &mut payer, &mut puppet, 5_000).await;
    assert_eq!(
        puppet.channel.spec().client_balance,
        Amount::from_sat(5_000) - join_fee
    );
    let terms = super::terms(&stack).await;
    Setup {
        stack,
        runs,
        payer,
        puppet,
        fees: terms.body.fees,
        join_fee,
        _storage: storage,
    }
}
