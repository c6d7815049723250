"""What the assistant says, in English and Chinese: one template per situation, filled with facts.

Templates never carry facts of their own (dates, amounts, statuses come from the order and
catalog projections), so an answer is either grounded or says that it cannot be.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

TEMPLATES: dict[str, dict[str, str]] = {
    "greeting": {
        "en": "Hi! I'm the ShopAI assistant. I can check your orders, help with returns and refunds, "
              "and answer questions about products, shipping and payment.",
        "zh": "您好！我是ShopAI智能客服，可以帮您查订单、办理退货退款，解答商品、配送和支付的问题。",
    },
    "thanks": {"en": "You're welcome! Is there anything else I can help with?",
               "zh": "不客气！还有什么可以帮您的吗？"},
    "goodbye": {"en": "Goodbye, and thanks for shopping with us!", "zh": "再见，感谢您的光临！"},
    "out_of_scope": {
        "en": "Sorry, I can only help with shopping here: orders, returns, refunds, products, shipping, "
              "payment, coupons and your account.",
        "zh": "抱歉，我只能解答本店购物相关的问题：订单、退货退款、商品、配送、支付、优惠券和账户。",
    },
    "not_understood": {
        "en": "Sorry, I'm not sure I understood. Could you rephrase it, or tell me your order number?",
        "zh": "抱歉，我没太理解您的意思。能换个说法，或者告诉我您的订单号吗？",
    },
    "which_order": {
        "en": "Which order do you mean? Your recent orders: {orders}.",
        "zh": "请问是哪一个订单？您最近的订单：{orders}。",
    },
    "order_not_found": {
        "en": "I couldn't find an order {order_id}. Please check the number (ORD- followed by 8 digits); "
              "if it is right, the order may not have reached our system yet.",
        "zh": "没有找到订单 {order_id}。请核对订单号（ORD-加8位数字）；如果订单号无误，可能订单信息还未同步到系统。",
    },
    "order_not_found_shop": {  # the shop's own order-id format (settings chat_order_id_pattern)
        "en": "I couldn't find an order {order_id}. Please check the number on your order confirmation; "
              "if it is right, the order may not have reached our system yet.",
        "zh": "没有找到订单 {order_id}。请核对订单确认中的订单号；如果订单号无误，可能订单信息还未同步到系统。",
    },
    "sign_in": {
        "en": "To look at your orders I need to know it's you: please sign in to the shop, then ask me again.",
        "zh": "查询订单需要先确认是您本人：请先登录商城，然后再问我一次。",
    },
    "return_sign_in": {"en": "{steps} To check whether one of your orders can be returned, please sign in first.",
                       "zh": "{steps} 如需确认您的订单能否退货，请先登录商城。"},
    "refund_sign_in": {"en": "{policy} To check the refund of one of your orders, please sign in first.",
                       "zh": "{policy} 如需查询您订单的退款进度，请先登录商城。"},
    "no_orders": {"en": "I can't find any orders on your account.", "zh": "您的账户下暂时没有订单。"},
    "order_status": {"en": "Order {order_id} ({items}): {status}.", "zh": "订单 {order_id}（{items}）：{status}。"},
    "status_created": {"en": "placed on {created}, waiting for payment", "zh": "已于{created}下单，等待付款"},
    "status_paid": {"en": "paid on {paid} and being prepared for shipping",
                    "zh": "已于{paid}付款，正在备货，即将发货"},
    "status_shipped": {"en": "shipped on {shipped} with {carrier}, tracking number {tracking}{eta}",
                       "zh": "已于{shipped}由{carrier}发出，运单号 {tracking}{eta}"},
    "eta": {"en": "; expected delivery {date}", "zh": "，预计{date}送达"},
    "status_delivered": {"en": "delivered on {delivered}", "zh": "已于{delivered}签收"},
    "status_cancelled": {"en": "cancelled on {cancelled}", "zh": "已于{cancelled}取消"},
    "status_returned": {"en": "returned on {returned}; the refund is being processed",
                        "zh": "已于{returned}退货，退款处理中"},
    "status_refunded": {"en": "refunded on {refunded}", "zh": "已于{refunded}退款"},
    "cancel_confirm": {
        "en": "Do you want me to cancel order {order_id} ({items}, {total})? Please answer yes or no.",
        "zh": "确认要取消订单 {order_id}（{items}，{total}）吗？请回复“是”或“否”。",
    },
    "cancel_done": {
        "en": "Done: the cancellation of order {order_id} has been sent to our order team. You'll get a "
              "confirmation, and any payment goes back to your original payment method.",
        "zh": "好的，订单 {order_id} 的取消申请已提交给订单团队。您会收到确认通知，已付款项将原路退回。",
    },
    "cancel_kept": {"en": "OK, I won't cancel order {order_id}.", "zh": "好的，订单 {order_id} 不会取消。"},
    "cancel_too_late": {
        "en": "Order {order_id} has already shipped, so it can't be cancelled any more. You can refuse the "
              "delivery or return it after it arrives.",
        "zh": "订单 {order_id} 已经发货，无法取消了。您可以拒收，或签收后申请退货。",
    },
    "cancel_delivered": {
        "en": "Order {order_id} was delivered on {delivered}; instead of cancelling, you can return it within "
              "30 days.",
        "zh": "订单 {order_id} 已于{delivered}签收，无法取消；签收后30天内可以申请退货。",
    },
    "already_cancelled": {"en": "Order {order_id} is already cancelled.", "zh": "订单 {order_id} 已经取消了。"},
    "return_ok": {
        "en": "Order {order_id} ({items}) was delivered on {delivered}, so it is within the 30-day return "
              "window (until {deadline}). {steps}",
        "zh": "订单 {order_id}（{items}）于{delivered}签收，仍在30天退货期内（截至{deadline}）。{steps}",
    },
    "return_too_late": {
        "en": "Order {order_id} was delivered on {delivered}, more than 30 days ago, so it can't be returned "
              "as a change of mind. If an item is defective, the warranty still covers it.",
        "zh": "订单 {order_id} 于{delivered}签收，已超过30天退货期，无法无理由退货。如有质量问题，可在保修期内申请保修。",
    },
    "return_not_delivered": {
        "en": "Order {order_id} hasn't been delivered yet ({status}). You can return it once it arrives, or "
              "cancel it if it hasn't shipped.",
        "zh": "订单 {order_id} 尚未签收（{status}）。签收后即可申请退货；如未发货，也可以直接取消。",
    },
    "already_returned": {"en": "Order {order_id} has already been returned ({status}).",
                         "zh": "订单 {order_id} 已经退货（{status}）。"},
    "return_need_order": {"en": "{steps} Which order would you like to return? Your recent orders: {orders}.",
                          "zh": "{steps} 请问要退哪一个订单？您最近的订单：{orders}。"},
    "refund_done": {
        "en": "The refund for order {order_id} ({total}) was issued on {refunded} to your original payment "
              "method; depending on your bank it shows up within 1-7 business days.",
        "zh": "订单 {order_id} 的退款（{total}）已于{refunded}原路退回，到账时间视银行而定，一般1-7个工作日。",
    },
    "refund_processing": {
        "en": "We received the return of order {order_id} on {returned}; the refund of {total} goes to your "
              "original payment method within 3-7 business days.",
        "zh": "订单 {order_id} 的退货已于{returned}收到，{total}退款将在3-7个工作日内原路退回。",
    },
    "refund_cancelled": {
        "en": "Order {order_id} was cancelled on {cancelled}; anything you paid ({total}) goes back to your "
              "original payment method within 3-7 business days.",
        "zh": "订单 {order_id} 已于{cancelled}取消，已付款项（{total}）将在3-7个工作日内原路退回。",
    },
    "refund_needs_return": {
        "en": "Order {order_id} is {status}. For a refund, return the item first; the refund follows once the "
              "warehouse receives it. {steps}",
        "zh": "订单 {order_id} 当前状态：{status}。如需退款，请先申请退货，仓库收货后即退款。{steps}",
    },
    "refund_before_shipping": {
        "en": "Order {order_id} hasn't shipped yet ({status}). If you cancel it, the payment is refunded in full.",
        "zh": "订单 {order_id} 还未发货（{status}），取消订单后货款将全额退回。",
    },
    "refund_need_order": {"en": "{policy} Which order's refund should I check? Your recent orders: {orders}.",
                          "zh": "{policy} 请问要查询哪一个订单的退款？您最近的订单：{orders}。"},
    "address_before_shipping": {
        "en": "Order {order_id} hasn't shipped yet, so the address can still be changed: open My orders, choose "
              "the order and \"Change address\". {extra}",
        "zh": "订单 {order_id} 还未发货，可以修改地址：进入“我的订单”，选择该订单点击“修改地址”。{extra}",
    },
    "address_after_shipping": {
        "en": "Order {order_id} has already shipped with {carrier} (tracking {tracking}); please contact the "
              "carrier with the tracking number to redirect it.",
        "zh": "订单 {order_id} 已由{carrier}发出（运单号 {tracking}），请联系快递公司凭运单号修改派送地址。",
    },
    "ask_product": {"en": "Which product do you mean? You can paste its name.",
                    "zh": "请问是哪一款商品？可以把商品名称发给我。"},
    "product_info": {
        "en": "{title}: {price}. Material: {material}. Colour: {colour}{other_colours}. Sizes: {sizes}.",
        "zh": "{title}：{price}。材质：{material}。颜色：{colour}{other_colours}。尺码：{sizes}。",
    },
    "other_colours": {"en": " (also in {colours})", "zh": "（另有{colours}）"},
    "in_stock": {"en": "{title} is in stock{few}.", "zh": "{title}有现货{few}。"},
    "few_left": {"en": " (only {n} left)", "zh": "（仅剩{n}件）"},
    "stock_unknown": {"en": "{title} is available to order.", "zh": "{title}可以下单购买。"},
    "sold_out": {"en": "Sorry, {title} is sold out at the moment.", "zh": "抱歉，{title}目前缺货。"},
    "size_ok": {"en": " Size {size} is offered.", "zh": "有{size}码。"},
    "size_missing": {"en": " It doesn't come in size {size}; sizes: {sizes}.",
                     "zh": "没有{size}码，可选尺码：{sizes}。"},
    "colour_missing": {"en": "I couldn't find {title} in {colour}; it comes in {colours}.",
                       "zh": "{title}没有{colour}款，现有颜色：{colours}。"},
    "recommendations": {"en": "You might like: {items}.", "zh": "为您推荐：{items}。"},
    "no_recommendations": {"en": "I can't suggest anything right now; please browse our new arrivals.",
                           "zh": "暂时无法为您推荐，欢迎先逛逛新品。"},
    "faq_fallback": {"en": "I don't have an answer to that; a colleague can help.",
                     "zh": "这个问题我暂时无法回答，可以为您转接人工客服。"},
    "complaint": {
        "en": "I'm really sorry about this. Could you tell me what happened and your order number? I can also "
              "connect you to a colleague.",
        "zh": "非常抱歉给您带来不好的体验。能告诉我具体情况和订单号吗？我也可以为您转接人工客服。",
    },
    "handoff": {
        "en": "I'm connecting you to a colleague now; they can see our conversation, so you won't need to repeat "
              "yourself. Agents are available 9:00-21:00 (Beijing time) every day.",
        "zh": "正在为您转接人工客服，客服可以看到我们的对话记录，您无需重复说明。人工客服服务时间为每天9:00-21:00（北京时间）。",
    },
    "handoff_angry": {
        "en": "I'm very sorry. I'm passing this to a colleague right away so a person can sort it out with you.",
        "zh": "非常抱歉！我马上为您转接人工客服，由专人为您处理。",
    },
    "handoff_failures": {
        "en": "Sorry, I'm having trouble understanding. Let me connect you to a colleague.",
        "zh": "抱歉，我没能理解您的问题，为您转接人工客服。",
    },
}

STATUS_WORDS = {
    "created": {"en": "placed, not paid yet", "zh": "已下单未付款"},
    "paid": {"en": "paid, not shipped yet", "zh": "已付款未发货"},
    "shipped": {"en": "shipped", "zh": "已发货"},
    "delivered": {"en": "delivered", "zh": "已签收"},
    "cancelled": {"en": "cancelled", "zh": "已取消"},
    "returned": {"en": "returned", "zh": "已退货"},
    "refunded": {"en": "refunded", "zh": "已退款"},
}

SUGGESTIONS = {
    "greeting": {"en": ["Where is my order?", "How do I return an item?", "Talk to a person"],
                 "zh": ["我的订单到哪了？", "怎么退货？", "转人工"]},
    "order": {"en": ["Return an item", "Cancel the order", "Talk to a person"],
              "zh": ["申请退货", "取消订单", "转人工"]},
    "confirm": {"en": ["Yes", "No"], "zh": ["是", "否"]},
    "product": {"en": ["Is it in stock?", "Recommend something similar"], "zh": ["有货吗？", "推荐类似的"]},
    "handoff": {"en": [], "zh": []},
    "default": {"en": ["Where is my order?", "Talk to a person"], "zh": ["我的订单到哪了？", "转人工"]},
    "sign_in": {"en": ["How do I return an item?", "Talk to a person"], "zh": ["怎么退货？", "转人工"]},
}


def say(key: str, language: str, **facts: object) -> str:
    return TEMPLATES[key][language].format(**facts)


def fmt_date(value: date | float | str | None, language: str) -> str:
    """A day as the shopper reads it: "Nov 30" / "11月30日"."""
    if value in (None, ""):
        return "?"
    if isinstance(value, int | float):
        day = datetime.fromtimestamp(float(value), UTC).date()
    elif isinstance(value, str):
        day = date.fromisoformat(value[:10])
    else:
        day = value
    return f"{day.month}月{day.day}日" if language == "zh" else f"{day:%b} {day.day}"


def fmt_money(amount: float | str | None, currency: str, language: str) -> str:
    value = float(amount or 0.0)
    if currency in ("CNY", "RMB", ""):
        return f"{value:.2f}元" if language == "zh" else f"¥{value:,.2f}"
    return f"{value:,.2f} {currency}"


def join_names(names: list[str], language: str) -> str:
    if language == "zh":
        return "、".join(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
